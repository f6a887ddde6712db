"""The benchmark's data: the suite's cases, the results of each run, and the numbers drawn from them."""
from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..rl.config import SOLVE_THRESHOLDS

EVAL_EPISODES = 20
EVAL_SEED = 10_000
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
SB3_TIMESTEPS = 100_000
SB3_ENV_ID = "CartPole-v1"
SPEED_TARGET = 0.25         # time to solve, same rule: pgcourse / SB3 at most this (issue 44; 1/3 before)
OLD_RULE_TARGET = 1 / 3     # the old rule's target (not like with like), kept to compare with earlier reports
THROUGHPUT_TARGET = 2.0     # equal work: pgcourse env steps/s at least this many times SB3's
TINY_ENV_VAR = "PGCOURSE_BENCH_TINY"  # test-only: tiny budgets, one seed, a 512-step SB3 run
INSTALL_HINT = "pip install -e .[bench]"
_MANY_STEPS = 100_000_000  # step budget of episode-limited cases (the episode count stops them first)

# rl-zoo's tuned PPO for CartPole-v1 (hyperparams/ppo.yml): what SB3 runs, and, translated, what pgcourse runs
# in the equal-work throughput comparison (learning rates annealed linearly to 0 on both sides)
ZOO_PPO_CARTPOLE = {"n_envs": 8, "n_steps": 32, "batch_size": 256, "n_epochs": 20, "gamma": 0.98,
                    "gae_lambda": 0.8, "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"}
PGCOURSE_AT_ZOO_SETTINGS = {"num_envs": 8, "n_steps": 32, "minibatch_size": 256, "update_epochs": 20,
                            "gamma": 0.98, "gae_lambda": 0.8, "ent_coef": 0.0, "lr": 1e-3, "critic_lr": 1e-3,
                            "anneal_lr": True, "clip_eps": 0.2, "max_grad_norm": 0.5, "critic_max_grad_norm": 0.5}


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
        steps = (f"{self.total_steps // 1000:,}k steps" if self.total_steps % 1000 == 0
                 else f"{self.total_steps:,} steps")
        if self.max_episodes is not None:
            # an episode budget; a step cap below the safety cap is part of the budget too (the quick suite's)
            return f"{self.max_episodes:,} episodes" + (f" (<= {steps})" if self.total_steps < _MANY_STEPS else "")
        return steps

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
    # the environments where CartPole hides an effect (issue 13); Acrobot-v1 is judged on sampled actions
    # (config.EVAL_MODE_DEFAULTS), LunarLander-v3 with its own defaults (config._ENV_ID_DEFAULTS)
    BenchCase("ppo", "Acrobot-v1", total_steps=100_000, eval_every=5_000),
    BenchCase("ppo", "LunarLander-v3", total_steps=1_000_000, eval_every=50_000),
    BenchCase("trpo", "CartPole-v1", total_steps=200_000, eval_every=10_000),  # chapter 07 (issue 16)
)

# ``pgcourse bench --quick``: the same pipeline in ~45 s on an idle 2-core machine (measured in docs/benchmark.md;
# 214 s was seen on a busy one).
# Budgets are a fraction of the full ones (learning-rate schedules that anneal do so over the smaller budget) and
# every run stops at its first solving evaluation, so the numbers are indicative; a row whose quick budget does not
# reach the stop rule says so (QUICK_UNREACHED) instead of showing a number. PPO on Pendulum-v1 needs ~50k steps
# to solve and on LunarLander-v3 ~500k: their quick rows can only say that.
QUICK_SUITE = (
    BenchCase("ppo", "CartPole-v1", total_steps=20_000, eval_every=2_500),
    BenchCase("a2c", "CartPole-v1", total_steps=20_000, eval_every=5_000),
    BenchCase("reinforce_baseline", "CartPole-v1", total_steps=30_000, eval_every=5_000, max_episodes=200),
    BenchCase("reinforce", "CartPole-v1", total_steps=30_000, eval_every=5_000, max_episodes=200),
    BenchCase("ppo", "Pendulum-v1", total_steps=5_000, eval_every=2_500),
    BenchCase("ppo", "Acrobot-v1", total_steps=15_000, eval_every=5_000),
    BenchCase("ppo", "LunarLander-v3", total_steps=5_000, eval_every=5_000),  # needs ~500k: its row says so
    BenchCase("trpo", "CartPole-v1", total_steps=20_000, eval_every=5_000),
)

# For the tests only (PGCOURSE_BENCH_TINY=1): seconds per case.
TINY_SUITE = (
    BenchCase("ppo", "CartPole-v1", total_steps=1_024, eval_every=512),
    BenchCase("a2c", "CartPole-v1", total_steps=1_024, eval_every=512),
    BenchCase("reinforce_baseline", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=500, max_episodes=8),
    BenchCase("reinforce", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=500, max_episodes=8),
    BenchCase("ppo", "Pendulum-v1", total_steps=1_024, eval_every=2_048),
    BenchCase("ppo", "Acrobot-v1", total_steps=1_024, eval_every=512),
    BenchCase("ppo", "LunarLander-v3", total_steps=2_048, eval_every=2_048),
    BenchCase("trpo", "CartPole-v1", total_steps=2_048, eval_every=2_048),
)


# the longest episode of each environment (its time limit): bounds the steps of an episode-limited budget
MAX_EPISODE_STEPS = {"CartPole-v1": 500, "Pendulum-v1": 200, "Acrobot-v1": 500, "LunarLander-v3": 1000}
WARM_UP_STEPS = 512 + 256  # the untimed warm-up before the comparisons: one tiny run per side


@dataclass(frozen=True)
class BenchPlan:
    """What one ``pgcourse bench`` call runs, decided before anything runs (:func:`pgcourse.bench.make_plan`).

    ``scaling``: (trials, steps per trial, with Ray) of the sweep-scaling measurement, or None.
    ``sb3_seeds`` / ``sb3_timesteps``: SB3's whole-budget reference runs for the old rule, which run only when
    the comparisons do not (the comparisons' equal-work runs serve as the reference otherwise).
    ``stop_when_solved``: the suite's runs end at their first solving evaluation (always with ``quick``).
    """

    cases: tuple[BenchCase, ...]
    seeds: tuple[int, ...]
    comparisons: CompareSettings | None
    scaling: tuple[int, int, bool] | None
    sb3: bool
    sb3_seeds: tuple[int, ...] = ()
    sb3_timesteps: int = SB3_TIMESTEPS
    quick: bool = False
    tiny: bool = False
    stop_when_solved: bool = False

    def case_steps(self, case: BenchCase) -> int:
        """The most env steps one seed of ``case`` can train on (its step budget, or its episodes x the
        environment's time limit when that is smaller)."""
        if case.max_episodes is not None and case.env_id in MAX_EPISODE_STEPS:
            return min(case.total_steps, case.max_episodes * MAX_EPISODE_STEPS[case.env_id])
        return case.total_steps

    def training_steps(self) -> dict[str, int]:
        """The work of the plan, part by part: env steps x seeds of every training run at its full budget (an
        upper bound: a run that solves under a stop rule ends sooner), SB3's side counted where it runs;
        evaluation episodes not counted."""
        work = {"suite": sum(self.case_steps(case) for case in self.cases) * len(self.seeds)}
        if self.comparisons is not None:
            c = self.comparisons
            work["comparisons"] = (len(c.seeds) * c.budget + len(c.throughput_seeds) * c.throughput_steps) * \
                (2 if c.sb3 and self.sb3 else 1) + WARM_UP_STEPS
        elif self.sb3 and self.sb3_seeds and any(c.algo == "ppo" and c.env_id == SB3_ENV_ID for c in self.cases):
            work["sb3 reference"] = len(self.sb3_seeds) * self.sb3_timesteps
        if self.scaling is not None:
            trials, steps, ray = self.scaling
            work["scaling"] = trials * steps * (3 if ray else 2)  # 1 worker, all workers (and Ray)
        return work

    def total_training_steps(self) -> int:
        return sum(self.training_steps().values())


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
    """One Stable-Baselines3 PPO run on CartPole-v1 (rl-zoo hyperparameters) over a whole budget."""

    seed: int
    timesteps: int
    wall_seconds: float          # model.learn only
    final_mean: float
    final_std: float
    solved: bool
    env_steps: int | None = None  # transitions SB3 collected (whole rollouts: a little over ``timesteps``)


@dataclass(frozen=True)
class CompareSettings:
    """What the side-by-side comparisons with SB3 run (both sides alike)."""

    seeds: tuple[int, ...] = DEFAULT_SEEDS          # time to solve
    throughput_seeds: tuple[int, ...] = (0, 1, 2)   # equal work
    budget: int = SB3_TIMESTEPS                     # time to solve: each side's tuned budget (both 100k)
    eval_every: int = 4_096
    eval_episodes: int = EVAL_EPISODES
    eval_seed: int = EVAL_SEED
    threshold: float = SOLVE_THRESHOLDS[SB3_ENV_ID]
    throughput_steps: int = SB3_TIMESTEPS
    sb3: bool = True                                # False: pgcourse's side only


@dataclass
class SolveRun:
    """One side's run under the same stopping rule: evaluate every ``eval_every`` env steps, stop at the first
    evaluation that reaches the threshold. ``wall_seconds``: from building the agent to the end of that
    evaluation, evaluations included (the whole budget if it never solved)."""

    side: str                 # "pgcourse" or "sb3"
    seed: int
    solved: bool
    solved_env_step: int | None
    wall_seconds: float
    eval_seconds: float       # of which evaluating (pgcourse: and building the envs and networks)
    evaluations: int
    last_eval_mean: float | None
    error: str | None = None


@dataclass
class ThroughputRun:
    """One side's run of a fixed budget with rl-zoo's settings, no evaluation while training."""

    side: str
    seed: int
    env_steps: int            # transitions trained on
    wall_seconds: float
    final_mean: float | None  # the final policy's 20-episode mean (not timed)
    error: str | None = None

    @property
    def steps_per_second(self) -> float | None:
        return self.env_steps / self.wall_seconds if self.error is None and self.wall_seconds > 0 else None


@dataclass
class ReportSection:
    """A titled block of the printed report and its data in the JSON (``data`` must be JSON-able).

    The hook for comparisons added from outside this module: pass providers, functions
    ``provider(log) -> ReportSection | None``, as ``run_benchmark(..., extra_sections=[...])`` (or
    ``main(extra_sections=...)``); each runs after the built-in comparisons and its section is printed last.
    The sweep-scaling comparison (``pgcourse.course.sweeps.scaling``) is meant to plug in here.
    """

    title: str
    lines: list[str]
    data: dict[str, Any] = field(default_factory=dict)


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
    comparisons: CompareSettings | None = None   # None: the side-by-side comparisons did not run
    quick: bool = False                 # --quick: rows a quick budget did not solve say so instead of a number
    solve_runs: list[SolveRun] = field(default_factory=list)
    throughput_runs: list[ThroughputRun] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    extra_sections: list[ReportSection] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(result.error for result in [*self.results, *self.solve_runs, *self.throughput_runs])


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


def _side_runs(runs: Sequence[Any], side: str) -> list[Any]:
    return [run for run in runs if run.side == side and run.error is None]


def time_to_solve_medians(report: BenchReport) -> tuple[float | None, float | None, float | None]:
    """(pgcourse median s, SB3 median s, ratio) of the same-rule time to solve. A seed that never solved
    counts with its whole-budget time (a lower bound), so a side cannot look faster by failing. With ``--quick``
    (``report.quick``) a seed that did not solve leaves all three None: a quick budget's lower bound says too little."""
    if report.quick and any(not r.solved for r in report.solve_runs if r.error is None):
        return None, None, None
    ours = _median([r.wall_seconds for r in _side_runs(report.solve_runs, "pgcourse")])
    theirs = _median([r.wall_seconds for r in _side_runs(report.solve_runs, "sb3")])
    return ours, theirs, (ours / theirs if ours is not None and theirs else None)


def throughput_medians(report: BenchReport) -> tuple[float | None, float | None, float | None]:
    """(pgcourse median env steps/s, SB3 median env steps/s, ratio pgcourse / SB3) at equal work."""
    ours = _median([r.steps_per_second for r in _side_runs(report.throughput_runs, "pgcourse")])
    theirs = _median([r.steps_per_second for r in _side_runs(report.throughput_runs, "sb3")])
    return ours, theirs, (ours / theirs if ours is not None and theirs else None)


def speed_ratio(report: BenchReport) -> float | None:
    """The old rule: median pgcourse PPO wall seconds to solve CartPole in the suite (learning alone) /
    median SB3 PPO whole-budget wall seconds. Not like with like: kept to compare with earlier reports."""
    ppo = [r for r in report.results if r.algo == "ppo" and r.env_id == SB3_ENV_ID and r.solved]
    ours = _median([r.solved_wall_seconds for r in ppo])
    theirs = _median([r.wall_seconds for r in report.sb3_results])
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


# The comparisons of ``--quick``: time to solve on 2 seeds with a 40,960-step budget (10 evaluations; over 10 seeds
# of the full run pgcourse solved by 20.8k steps and SB3 by 28.7k), equal work over 10,240 steps (40 rollouts of
# 8 envs x 32 steps) on 1 seed.
QUICK_COMPARISONS = CompareSettings(seeds=QUICK_SEEDS, throughput_seeds=QUICK_SEEDS[:1], budget=40_960,
                                    throughput_steps=10_240)
QUICK_SCALING = (4, 2_000)  # the sweep-scaling measurement of --quick: 4 trials of 2,000 steps, local workers only
QUICK_UNREACHED = "not solved within the quick budget of {budget}: run without --quick for the full comparison"


def quick_unreached(budget: str) -> str:
    """The explanation a quick row shows where its budget did not reach the stop rule (instead of a number)."""
    return QUICK_UNREACHED.format(budget=budget)


# For the tests only: a few seconds. With threshold 5 (no CartPole episode is that short) both sides "solve" at
# their first evaluation, so every line of the report is exercised.
TINY_COMPARISONS = CompareSettings(seeds=(0,), throughput_seeds=(0,), budget=1_024, eval_every=512,
                                   threshold=5.0, throughput_steps=512)


