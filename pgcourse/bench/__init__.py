"""The course benchmark: how fast and how reliably each algorithm solves its environment, and how
pgcourse's PPO compares with Stable-Baselines3's on the same machine.

**The course suite.** For every case (algorithm, environment, budget) and every seed we train with the
course defaults, evaluating the greedy policy during training every ``eval_every`` env steps, then
evaluate the final policy on 20 fixed episodes (seeds 10000..10019). "Solved" means a mean return
over those 20 episodes at or above the environment's threshold (CartPole-v1: 475, Pendulum-v1: -200,
Acrobot-v1: -100, LunarLander-v3: 200; Acrobot-v1 is evaluated with sampled actions, the others greedily).
The time to solve is the first evaluation that reached it (``history.solved_at``); its wall time
excludes the time spent evaluating, so it measures learning alone.

**Side by side with Stable-Baselines3** (PPO on CartPole-v1; ``stable-baselines3`` optional: without it
only pgcourse's side runs). Each seed runs pgcourse then SB3, seed after seed, in this process:

- *time to solve, the same rule for both*: each side with its own tuned hyperparameters (pgcourse: its
  defaults; SB3: rl-zoo's) evaluates 20 greedy episodes (seeds 10000..10019) every 4,096 env steps and
  stops at the first mean >= 475; the wall time from building the agent to that evaluation, evaluations
  included. Ratio of the medians (target <= 1/3).
- *throughput at equal work*: 100k env steps with rl-zoo's settings on both sides (8 envs x 32 steps,
  minibatch 256, 20 epochs, gamma 0.98, lambda 0.8, lr 1e-3 annealed, no evaluation); env steps per
  second, ratio pgcourse / SB3 (target >= 2).
- *the old rule*, kept for comparison with earlier reports: pgcourse's time to solve in the suite
  (learning alone) / SB3's whole 100k-step run. It divides unlike things.

Both sides run with ``torch.set_num_threads(1)``. The report names the command and the machine.

**--quick** runs the same parts with a bounded plan (:func:`make_plan`, :class:`BenchPlan`): two seeds, small
budgets, every suite run stopping at its first solving evaluation, a short equal-work run, the sweep scaling
without Ray. Under a minute on a 2-core machine (docs/benchmark.md). Where a quick budget does not reach the
stop rule, the row says so (:func:`quick_unreached`) instead of giving a number.
Further comparisons plug in as :class:`ReportSection` providers (``extra_sections``).

Run it with ``pgcourse bench`` (see ``pgcourse bench --help``), or from Python::

    from pgcourse import bench
    report = bench.run_benchmark(bench.DEFAULT_SUITE, seeds=[0, 1, 2], comparisons=bench.CompareSettings())
    bench.print_report(report)
"""
from __future__ import annotations

import dataclasses
import os
import platform
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..rl.api import train
from ..rl.evaluation import evaluate
from .report import (detail_table, format_table, machine_lines, print_report, quick_case_note, report_to_dict,
                     sb3_lines, summary_table, throughput_lines, time_to_solve_lines, write_json)
from .results import (DEFAULT_SEEDS, DEFAULT_SUITE, EVAL_EPISODES, EVAL_SEED, INSTALL_HINT, PGCOURSE_AT_ZOO_SETTINGS,
                      QUICK_COMPARISONS, QUICK_SCALING, QUICK_SEEDS, QUICK_SUITE, QUICK_UNREACHED, SB3_ENV_ID,
                      SB3_TIMESTEPS, SPEED_TARGET, THROUGHPUT_TARGET, TINY_COMPARISONS, TINY_ENV_VAR, TINY_SUITE,
                      ZOO_PPO_CARTPOLE, BenchCase, BenchPlan, BenchReport, CaseSummary, CompareSettings,
                      ReportSection, SB3Result, SeedResult, SolveRun, ThroughputRun, quick_unreached, select_cases,
                      speed_ratio, summarize_case, throughput_medians, time_to_solve_medians, tiny_mode)
from .sb3 import _zoo_ppo, evaluate_sb3, run_sb3_ppo, run_sb3_time_to_solve, sb3_available, sb3_vector_evaluator


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


def run_pgcourse_time_to_solve(seed: int, settings: CompareSettings) -> SolveRun:
    """pgcourse PPO on CartPole-v1 with its defaults under the shared stopping rule (evaluations timed too)."""
    started = time.perf_counter()
    run = train("ppo", SB3_ENV_ID, seed=seed, device="cpu", progress=False, torch_threads=1,
                total_steps=settings.budget, eval_every=settings.eval_every, eval_episodes=settings.eval_episodes,
                eval_seed=settings.eval_seed, solve_threshold=settings.threshold, stop_when_solved=True)
    wall = time.perf_counter() - started
    history = run.history
    solved_at, evals = history.solved_at, history.evals
    # the history's wall times leave evaluations out: the rest of the wall time went to them (and to the set-up:
    # envs, networks; tens of milliseconds)
    learning = float(solved_at["wall_time"]) if solved_at else _training_totals(run)[2]
    return SolveRun("pgcourse", seed, solved_at is not None, int(solved_at["env_step"]) if solved_at else None,
                    wall, max(0.0, wall - learning), len(evals), float(evals["mean"][-1]) if len(evals) else None)


def run_pgcourse_throughput(seed: int, steps: int, eval_episodes: int = EVAL_EPISODES,
                            eval_seed: int = EVAL_SEED) -> ThroughputRun:
    """pgcourse PPO on CartPole-v1 with rl-zoo's settings for ``steps`` env steps, no evaluation while training;
    the wall time covers the whole ``pg.train`` call (set-up included)."""
    started = time.perf_counter()
    run = train("ppo", SB3_ENV_ID, seed=seed, device="cpu", progress=False, torch_threads=1, total_steps=steps,
                **PGCOURSE_AT_ZOO_SETTINGS)
    wall = time.perf_counter() - started
    final_mean = evaluate(run, SB3_ENV_ID, episodes=eval_episodes, seed=eval_seed).mean
    return ThroughputRun("pgcourse", seed, _training_totals(run)[0], wall, final_mean)


# -- the comparisons -------------------------------------------------------------------------------
def _guarded(make: Callable[[], Any], failed: Callable[[str], Any]) -> Any:
    try:
        return make()
    except Exception as error:  # keep going: one broken run must not hide the others' numbers
        return failed(f"{type(error).__name__}: {error}")


def _warm_up(sb3: bool) -> None:
    """One tiny untimed run per side, so neither side's first measured run pays for first-call costs."""
    train("ppo", SB3_ENV_ID, seed=0, device="cpu", progress=False, torch_threads=1, total_steps=512,
          **PGCOURSE_AT_ZOO_SETTINGS)
    if sb3:
        model = _zoo_ppo(0)
        model.learn(total_timesteps=256)
        model.get_env().close()


def run_comparisons(report: BenchReport, settings: CompareSettings, log: Callable[[str], None]) -> None:
    """The side-by-side comparisons, seed after seed, pgcourse then SB3 for each (interleaved, so a change in
    the machine's load falls on both sides alike). Fills ``report.solve_runs``, ``throughput_runs`` and, from
    SB3's equal-work runs, ``sb3_results`` (the old rule's denominator)."""
    sb3 = settings.sb3 and report.sb3_skipped is None
    _warm_up(sb3)
    for seed in settings.seeds:
        for side, runner in (("pgcourse", run_pgcourse_time_to_solve), ("sb3", run_sb3_time_to_solve)):
            if side == "sb3" and not sb3:
                continue
            result = _guarded(lambda: runner(seed, settings),
                              lambda error: SolveRun(side, seed, False, None, 0.0, 0.0, 0, None, error))
            report.solve_runs.append(result)
            log(f"[time to solve] {side} seed {seed}: " + (f"FAILED ({result.error})" if result.error else
                (f"solved at {result.solved_env_step:,} steps in {result.wall_seconds:.1f} s" if result.solved
                 else f"not solved within {'the quick budget of ' if report.quick else ''}{settings.budget:,} steps "
                      f"({result.wall_seconds:.1f} s)")
                + f", {result.evaluations} evaluations ({result.eval_seconds:.1f} s)"))
    for seed in settings.throughput_seeds:
        ours = _guarded(lambda: run_pgcourse_throughput(seed, settings.throughput_steps),
                        lambda error: ThroughputRun("pgcourse", seed, 0, 0.0, None, error))
        report.throughput_runs.append(ours)
        log(f"[equal work] pgcourse seed {seed}: " + (f"FAILED ({ours.error})" if ours.error else
            f"{ours.env_steps:,} steps in {ours.wall_seconds:.1f} s ({ours.steps_per_second:,.0f}/s)"))
        if not sb3:
            continue
        try:
            theirs = run_sb3_ppo(seed, settings.throughput_steps)
        except Exception as error:  # noqa: BLE001 - reported, the others go on
            report.throughput_runs.append(ThroughputRun("sb3", seed, 0, 0.0, None, f"{type(error).__name__}: {error}"))
            log(f"[equal work] sb3 seed {seed}: FAILED ({error})")
            continue
        report.sb3_results.append(theirs)
        run = ThroughputRun("sb3", seed, theirs.env_steps or theirs.timesteps, theirs.wall_seconds, theirs.final_mean)
        report.throughput_runs.append(run)
        log(f"[SB3] PPO {SB3_ENV_ID} seed {seed}: {theirs.timesteps:,} steps in {theirs.wall_seconds:.1f} s "
            f"({run.steps_per_second:,.0f}/s); final {theirs.final_mean:.1f} ± {theirs.final_std:.1f}")


# -- the machine -----------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, torch threads, versions and the load average: what the numbers were measured on."""
    import gymnasium
    import numpy
    import torch

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(), "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
        "gymnasium": gymnasium.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import stable_baselines3
        info["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        info["stable_baselines3"] = None
    return info


def format_command(algos: Sequence[str] | None = None, envs: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None, quick: bool = False, stop_when_solved: bool = False,
                   sb3: bool = True, json_path: str | None = None, device: str = "cpu", suite: bool = True,
                   comparisons: bool = True, compare_seeds: Sequence[int] | None = None) -> str:
    """The ``pgcourse bench`` command line that asks for these options."""
    parts = ["pgcourse", "bench"]
    for flag, values in (("--algos", algos), ("--envs", envs), ("--seeds", seeds), ("--compare-seeds", compare_seeds)):
        if values:
            parts += [flag, *map(str, values)]
    parts += [flag for flag, on in (("--quick", quick), ("--stop-when-solved", stop_when_solved), ("--no-sb3", not sb3),
                                    ("--skip-suite", not suite), ("--skip-comparisons", not comparisons)) if on]
    if device != "cpu":
        parts += ["--device", device]
    if json_path:
        parts += ["--json", json_path]
    return " ".join(parts)


# -- the whole benchmark ---------------------------------------------------------------------------
def _describe(result: SeedResult) -> str:
    if result.error:
        return f"FAILED ({result.error})"
    solved = (f"solved at {result.solved_env_step:,} steps / {result.solved_episodes:,} episodes "
              f"({result.solved_wall_seconds:.1f} s)" if result.solved else "not solved")
    return (f"{solved}; final {result.final_mean:.1f} ± {result.final_std:.1f}; "
            f"{result.total_env_steps:,} steps in {result.train_wall_seconds:.1f} s")


SectionProvider = Callable[[Callable[[str], None]], "ReportSection | None"]


def run_benchmark(cases: Sequence[BenchCase], seeds: Sequence[int], *, device: str = "cpu",
                  stop_when_solved: bool = False, sb3: bool = True, sb3_seeds: Sequence[int] | None = None,
                  sb3_timesteps: int = SB3_TIMESTEPS, log: Callable[[str], None] | None = None,
                  tiny: bool = False, comparisons: CompareSettings | None = None,
                  extra_sections: Sequence[SectionProvider] = (), command: str | None = None,
                  quick: bool = False) -> BenchReport:
    """Train every case with every seed, then run the comparisons with SB3; return the report.

    ``comparisons`` None: no side-by-side comparison; SB3 (if ``sb3``) runs its 100k-step reference alone,
    for the old rule. A run that raises is recorded as failed (its error kept) and the benchmark goes on.
    ``log`` receives one progress line per run (default: print to stdout). ``extra_sections``: see
    :class:`ReportSection`. ``quick``: the budgets are ``--quick``'s; the report then explains, row by row,
    where a quick budget did not reach the stop rule, and leaves out the old rule (it needs SB3's whole 100k-step run).
    """
    import torch

    log = log or (lambda line: print(line, flush=True))
    torch.set_num_threads(1)
    report = BenchReport(list(cases), list(seeds), device, stop_when_solved, sb3_timesteps=sb3_timesteps, tiny=tiny,
                         comparisons=comparisons, machine=machine_info(), command=command, quick=quick)
    total = len(cases) * len(seeds)
    for index, (case, seed) in enumerate(((case, seed) for case in cases for seed in seeds), start=1):
        try:
            result = run_case_seed(case, seed, device=device, stop_when_solved=stop_when_solved)
        except Exception as error:  # keep going: one broken case must not hide the others' numbers
            result = _failed_result(case, seed, error)
        report.results.append(result)
        log(f"[{index}/{total}] {case.algo} {case.env_id} seed {seed}: {_describe(result)}")

    has_ppo_cartpole = any(c.algo == "ppo" and c.env_id == SB3_ENV_ID for c in cases)
    if not sb3 or (comparisons is not None and not comparisons.sb3):
        report.sb3_skipped = "skipped (--no-sb3)"
    elif comparisons is None and not has_ppo_cartpole:
        report.sb3_skipped = f"skipped (the comparison needs ppo on {SB3_ENV_ID} in the suite)"
    elif not sb3_available():
        report.sb3_skipped = f"skipped: stable-baselines3 is not installed (install it with `{INSTALL_HINT}`)"
    if comparisons is not None:
        report.sb3_timesteps = comparisons.throughput_steps
        run_comparisons(report, comparisons, log)
    elif quick and report.sb3_skipped is None:
        report.sb3_skipped = (f"the old rule needs SB3's whole {sb3_timesteps:,}-step run, left out of the quick "
                              "budget: run without --quick for the full comparison")
    elif report.sb3_skipped is None:
        for seed in (sb3_seeds if sb3_seeds is not None else seeds):
            result = run_sb3_ppo(seed, sb3_timesteps)
            report.sb3_results.append(result)
            log(f"[SB3] PPO {SB3_ENV_ID} seed {seed}: {result.timesteps:,} steps in {result.wall_seconds:.1f} s; "
                f"final {result.final_mean:.1f} ± {result.final_std:.1f}")
    for provider in extra_sections:
        section = provider(log)
        if section is not None:
            report.extra_sections.append(section)
    if hasattr(os, "getloadavg"):
        report.machine["load_average_end"] = list(os.getloadavg())
    return report


def sweep_scaling_provider(trials: int = 20, total_steps: int = 10_000, ray: bool = True,
                           note: str | None = None) -> SectionProvider:
    """The third comparison: ``trials`` PPO CartPole trials on 1 and on every core's worker, and on a Ray
    instance started here (:mod:`pgcourse.course.sweeps.scaling`): the speed-up and the overhead per trial.
    ``note``: a last line for the section (``--quick`` says there why Ray is left out)."""
    def provider(log: Callable[[str], None]) -> ReportSection:
        from ..course.sweeps.scaling import measure_scaling

        log(f"[scaling] {trials} PPO CartPole trials of {total_steps:,} steps on 1 and on all local workers"
            + (" and on Ray" if ray else ""))
        result = measure_scaling(trials, total_steps, ray=ray)
        lines = result.lines() + [f"  {line}" for line in textwrap.wrap(note or "", width=116)]
        data = {"trials": trials, "total_steps": total_steps, "speedup": result.speedup,
                "ray_start_seconds": result.ray_start_seconds, "ray_skipped": result.ray_skipped,
                "identical": result.identical,
                "runs": [{**dataclasses.asdict(run), "overhead_per_trial": run.overhead_per_trial}
                         for run in result.runs]}
        return ReportSection(lines[0], lines[1:], data)
    return provider


def batched_seeds_provider(seeds: Sequence[int], total_steps: int) -> SectionProvider:
    """Ten (``seeds``) PPO CartPole seeds as one batch (``pg.train_many``) against one after another
    (``pg.train``): CPU seconds, speed-up and the final returns of both sides (:mod:`.many_seeds`)."""
    def provider(log: Callable[[str], None]) -> ReportSection:
        from .many_seeds import measure_batched_seeds

        log(f"[batched seeds] {len(seeds)} PPO CartPole seeds of {total_steps:,} steps as one batch, then one "
            "after another")
        result = measure_batched_seeds(list(seeds), total_steps)
        log("[batched seeds] the same on torch envs (the batch's agents share one env)")
        on_torch = measure_batched_seeds(list(seeds), total_steps, env_backend="torch")
        lines = result.lines() + on_torch.lines()
        return ReportSection(lines[0], lines[1:], {**result.data(), "torch_envs": on_torch.data()})
    return provider


def checks_speed_provider() -> SectionProvider:
    """How long each exercise check takes on the course's own answer (:mod:`.checks_speed`; a few seconds)."""
    def provider(log: Callable[[str], None]) -> ReportSection:
        from . import checks_speed

        log("[checks] every exercise check and stage check on the course's own answers")
        data = checks_speed.measure_checks()
        return ReportSection("How long the exercise checks take (the course's own answers)", checks_speed.lines(data),
                             data)
    return provider


def batched_seeds_plan(quick: bool, tiny: bool) -> tuple[tuple[int, ...], int]:
    """(seeds, steps per seed) of the batched-seeds measurement: ten seeds of the course's 100k steps; ten of
    2,048 with ``quick`` (measured: 8.0 CPU-s both sides together, 25 s wall at load 6 on 2 cores); two of
    512 in the test mode."""
    if tiny:
        return (0, 1), 512
    return tuple(range(10)), 2_048 if quick else 100_000


QUICK_SCALING_NOTE = ("quick: {trials} short trials, so starting the worker processes weighs more than in the full "
                      "run's 20 trials of 10,000 steps (the target is the full run's); Ray is left out (starting it "
                      "alone takes several seconds): run without --quick for the full comparison")


def make_plan(algos: Sequence[str] | None = None, envs: Sequence[str] | None = None,
              seeds: Sequence[int] | None = None, quick: bool = False, sb3: bool = True, suite: bool = True,
              comparisons: bool = True, compare_seeds: Sequence[int] | None = None, scaling: bool = True,
              tiny: bool | None = None, stop_when_solved: bool = False) -> BenchPlan:
    """What ``pgcourse bench`` with these options runs (:class:`BenchPlan`), before anything runs.

    Full: the suite on seeds 0-4, the comparisons on the same seeds (equal work on the first 3), the sweep scaling
    with 20 trials of 10k steps and Ray. ``quick``: :data:`QUICK_SUITE` on seeds 0-1, each run ending at its first
    solving evaluation, :data:`QUICK_COMPARISONS` (time to solve with a 40,960-step budget, equal work over 10,240
    steps on the first seed), 4 scaling trials of 2,000 steps without Ray, no SB3 reference run. ``tiny`` (None: the
    test mode ``PGCOURSE_BENCH_TINY=1``): tiny budgets, one seed. Raises ValueError when ``algos``/``envs`` match
    no case of the suite.
    """
    tiny = tiny_mode() if tiny is None else tiny
    suite_cases = TINY_SUITE if tiny else QUICK_SUITE if quick else DEFAULT_SUITE
    cases = select_cases(suite_cases, algos, envs) if suite else []
    if suite and not cases:
        raise ValueError(f"no benchmark case matches algos={list(algos or [])} envs={list(envs or [])}; the suite "
                         f"has {[(c.algo, c.env_id) for c in suite_cases]}")
    seeds = tuple(seeds) if seeds is not None else (0,) if tiny else QUICK_SEEDS if quick else DEFAULT_SEEDS
    wants_ppo_cartpole = not suite or any(c.algo == "ppo" and c.env_id == SB3_ENV_ID for c in cases)
    settings = None
    if comparisons and wants_ppo_cartpole:
        compare = tuple(compare_seeds) if compare_seeds else seeds
        if tiny:
            settings = dataclasses.replace(TINY_COMPARISONS, seeds=compare[:1], throughput_seeds=compare[:1], sb3=sb3)
        elif quick:
            settings = dataclasses.replace(QUICK_COMPARISONS, seeds=compare, throughput_seeds=compare[:1], sb3=sb3)
        else:
            settings = CompareSettings(seeds=compare, throughput_seeds=compare[:3], sb3=sb3)
    scaling_plan = None
    if scaling:
        scaling_plan = (4, 512, False) if tiny else (*QUICK_SCALING, False) if quick else (20, 10_000, True)
    return BenchPlan(tuple(cases), seeds, settings, scaling_plan, sb3,
                     sb3_seeds=seeds[:1] if tiny else () if quick else seeds,
                     sb3_timesteps=512 if tiny else SB3_TIMESTEPS, quick=quick, tiny=tiny,
                     stop_when_solved=stop_when_solved or quick)


def main(algos: Sequence[str] | None = None, envs: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
         quick: bool = False, stop_when_solved: bool = False, sb3: bool = True, json_path: str | None = None,
         device: str = "cpu", suite: bool = True, comparisons: bool = True, compare_seeds: Sequence[int] | None = None,
         extra_sections: Sequence[SectionProvider] = (), scaling: bool = True, batched_seeds: bool = True) -> int:
    """What ``pgcourse bench`` runs (the plan of :func:`make_plan`); returns the exit code (1 if any training run
    failed).

    ``scaling``: also measure how a sweep scales (:func:`sweep_scaling_provider`; 20 trials, 4 short ones without
    Ray with ``quick`` or in the test mode). ``batched_seeds``: also time ten seeds as one batch against one after
    another (:func:`batched_seeds_provider`, :func:`batched_seeds_plan`).

    ``suite=False`` runs only the comparisons with SB3; ``comparisons=False`` only the suite (then SB3, if
    asked, runs its 100k-step reference for the old rule; not with ``quick``). The comparisons run when the
    selection includes PPO on CartPole-v1 (or without the suite). ``quick`` takes about a minute on a 2-core
    machine; where its budgets do not reach the stop rule, the report says so row by row instead of giving a
    number. In the test mode (``PGCOURSE_BENCH_TINY=1``) budgets are tiny and the comparisons' threshold is 5,
    so both sides "solve" at their first evaluation.
    """
    command = format_command(algos, envs, seeds, quick, stop_when_solved, sb3, json_path, device, suite, comparisons,
                             compare_seeds)
    plan = make_plan(algos, envs, seeds, quick, sb3, suite, comparisons, compare_seeds, scaling,
                     stop_when_solved=stop_when_solved)
    extra_sections = [*extra_sections, checks_speed_provider()]
    if batched_seeds:
        extra_sections = [*extra_sections, batched_seeds_provider(*batched_seeds_plan(plan.quick, plan.tiny))]
    if plan.scaling is not None:
        trials, steps, ray = plan.scaling
        note = QUICK_SCALING_NOTE.format(trials=trials) if plan.quick and not plan.tiny else None
        extra_sections = [*extra_sections, sweep_scaling_provider(trials, steps, ray=ray, note=note)]
    started = time.perf_counter()
    report = run_benchmark(plan.cases, plan.seeds, device=device, stop_when_solved=plan.stop_when_solved, sb3=sb3,
                           sb3_seeds=plan.sb3_seeds, sb3_timesteps=plan.sb3_timesteps, tiny=plan.tiny,
                           comparisons=plan.comparisons, extra_sections=extra_sections, command=command,
                           quick=plan.quick)
    print_report(report)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    if json_path:
        print(f"per-seed results written to {write_json(report, json_path)}")
    if report.failed:
        print("some training runs FAILED (see the status column)", file=sys.stderr)
        return 1
    return 0


__all__ = [
    # the suite and its results
    "BenchCase", "DEFAULT_SUITE", "QUICK_SUITE", "TINY_SUITE", "DEFAULT_SEEDS", "QUICK_SEEDS", "SeedResult",
    "CaseSummary", "select_cases", "tiny_mode", "run_case_seed", "summarize_case",
    # what one call runs, and --quick
    "BenchPlan", "make_plan", "QUICK_COMPARISONS", "QUICK_SCALING", "QUICK_UNREACHED", "QUICK_SCALING_NOTE",
    "quick_unreached", "quick_case_note",
    # the comparisons with SB3
    "CompareSettings", "TINY_COMPARISONS", "SolveRun", "ThroughputRun", "SB3Result", "ZOO_PPO_CARTPOLE",
    "PGCOURSE_AT_ZOO_SETTINGS", "SB3_ENV_ID", "SB3_TIMESTEPS", "SPEED_TARGET", "THROUGHPUT_TARGET", "EVAL_EPISODES",
    "EVAL_SEED", "TINY_ENV_VAR", "INSTALL_HINT", "sb3_available", "run_sb3_ppo", "evaluate_sb3",
    "sb3_vector_evaluator", "run_pgcourse_time_to_solve", "run_sb3_time_to_solve", "run_pgcourse_throughput",
    "run_comparisons", "speed_ratio", "time_to_solve_medians", "throughput_medians",
    # the whole benchmark and its report
    "BenchReport", "ReportSection", "run_benchmark", "machine_info", "format_command", "print_report",
    "summary_table", "detail_table", "machine_lines", "time_to_solve_lines", "throughput_lines", "sb3_lines",
    "format_table", "report_to_dict", "write_json", "main", "sweep_scaling_provider", "batched_seeds_provider",
    "batched_seeds_plan", "checks_speed_provider",
]
