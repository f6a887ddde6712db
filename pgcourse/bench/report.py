"""Presenting a benchmark: the printed report and the JSON file."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..rl.config import EVAL_MODE_DEFAULTS, SOLVE_THRESHOLDS
from .results import (EVAL_EPISODES, EVAL_SEED, OLD_RULE_TARGET, PGCOURSE_AT_ZOO_SETTINGS, SB3_ENV_ID, SPEED_TARGET,
                      THROUGHPUT_TARGET, TINY_ENV_VAR, ZOO_PPO_CARTPOLE, BenchReport, CaseSummary, _median,
                      _side_runs, quick_unreached, speed_ratio, summarize_case, throughput_medians,
                      time_to_solve_medians)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> str:
    """A plain-text table: the columns numbered in ``left`` (default: the first) left-aligned, the others
    right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    left_columns = {i % len(widths) for i in left} if widths else set()

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cell).ljust(width) if i in left_columns else str(cell).rjust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule] + [line(row) for row in rows])


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _mean_std(mean: float | None, std: float | None) -> str:
    return "—" if mean is None else f"{mean:.1f} ± {_fmt(std, '.1f')}"


def quick_case_note(summary: CaseSummary) -> str:
    """A ``--quick`` row's explanation where seeds did not solve within the quick budget ("" where all did)."""
    ran = summary.seeds_total - summary.failures
    unsolved = ran - summary.seeds_solved
    if unsolved <= 0:
        return ""
    if summary.seeds_solved == 0:
        return quick_unreached(summary.budget)
    return (f"{unsolved} of {ran} seeds {quick_unreached(summary.budget)}; the medians are over the "
            f"{summary.seeds_solved} that solved")


def summary_table(report: BenchReport) -> str:
    """One row per case. With ``--quick``, a last column explains the rows whose quick budget did not reach the
    stop rule: their steps, episodes and seconds to solve are left blank rather than guessed."""
    headers = ["algo", "env", "budget", "solved", "med steps", "med episodes", "med wall s",
               "final mean ± std", "final min", "steps/s"]
    rows = []
    for case in report.cases:
        s = summarize_case(case, report.results)
        solved = f"{s.seeds_solved}/{s.seeds_total}" + (f" ({s.failures} failed)" if s.failures else "")
        rows.append([s.algo, s.env_id, s.budget, solved, _fmt(s.median_steps_to_solve),
                     _fmt(s.median_episodes_to_solve), _fmt(s.median_wall_seconds_to_solve, ".1f"),
                     _mean_std(s.final_mean, s.final_std), _fmt(s.final_min, ".1f"), _fmt(s.env_steps_per_second)]
                    + ([quick_case_note(s)] if report.quick else []))
    if report.quick and any(row[-1] for row in rows):
        return format_table([*headers, "note"], rows, left=(0, -1))
    return format_table(headers, [row[:len(headers)] for row in rows])


def detail_table(report: BenchReport) -> str:
    headers = ["algo", "env", "seed", "solved", "steps", "episodes", "wall s", "final mean ± std",
               "env steps", "train s", "status"]

    def status(r) -> str:
        if r.error or not report.quick or r.solved:
            return r.error or r.status
        return f"{r.status}; not solved within the quick budget ({r.budget})"

    rows = [[r.algo, r.env_id, str(r.seed), "yes" if r.solved else "no", _fmt(r.solved_env_step),
             _fmt(r.solved_episodes), _fmt(r.solved_wall_seconds, ".1f"), _mean_std(r.final_mean, r.final_std),
             _fmt(r.total_env_steps), _fmt(r.train_wall_seconds, ".1f"), status(r)]
            for r in report.results]
    return format_table(headers, rows, left=(0, -1) if report.quick else (0,))


def machine_lines(report: BenchReport) -> list[str]:
    m = report.machine
    if not m:
        return []
    load = lambda key: "n/a" if not m.get(key) else " ".join(f"{x:.2f}" for x in m[key])  # noqa: E731
    return [f"command: {report.command or '(called from Python)'}",
            f"machine: {m.get('cpu_model')}, {m.get('cores')} cores ({m.get('usable_cores')} usable), "
            f"torch threads {m.get('torch_threads')}",
            f"software: Python {m.get('python')}, torch {m.get('torch')}, gymnasium {m.get('gymnasium')}, "
            f"numpy {m.get('numpy')}, stable-baselines3 {m.get('stable_baselines3') or 'not installed'}",
            *_wrap(f"load average (1, 5, 15 min) at start: {load('load_average_start')}; at end: "
                   f"{load('load_average_end')} (the benchmark itself adds ~1; above that, other work shared the CPU "
                   "and wall times are pessimistic)")]


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, width=118, break_on_hyphens=False)


def _sb3_missing_line(report: BenchReport) -> str | None:
    return f"SB3 side: {report.sb3_skipped}; pgcourse's side ran alone" if report.sb3_skipped else None


def time_to_solve_lines(report: BenchReport) -> list[str]:
    settings = report.comparisons
    if settings is None or not report.solve_runs:
        return []
    lines = _wrap(f"(a) time to solve {SB3_ENV_ID}, the same rule for both: {settings.eval_episodes} greedy episodes "
                  f"(seeds {settings.eval_seed}..{settings.eval_seed + settings.eval_episodes - 1}) every "
                  f"{settings.eval_every:,} env steps, stop at the first mean >= {settings.threshold:g}, budget "
                  f"{settings.budget:,} steps; seconds from building the agent to that evaluation, evaluations "
                  "included. pgcourse: its defaults; SB3: rl-zoo's tuned PPO (8 envs x 32 steps, batch 256, 20 epochs, "
                  "gamma 0.98, lambda 0.8, lr and clip lin_0.001 / lin_0.2), evaluating with evaluate_policy on a "
                  f"DummyVecEnv of {settings.eval_episodes} envs. Seed by seed, pgcourse then SB3.")
    if (missing := _sb3_missing_line(report)) is not None:
        lines.append(missing)
    headers = ["side", "seed", "solved", "at env step", "wall s (evals incl.)", "evaluating s*", "evaluations",
               "last eval mean"]
    unreached = quick_unreached(f"{settings.budget:,} steps")

    def wall(r) -> str:
        if r.solved or r.error:
            return _fmt(r.wall_seconds, ".2f")
        return "—" if report.quick else _fmt(r.wall_seconds, ".2f") + " (>=)"  # quick: no lower bound

    rows = [[r.side, str(r.seed), "FAILED" if r.error else "yes" if r.solved else "no", _fmt(r.solved_env_step),
             wall(r), _fmt(r.eval_seconds, ".2f"), str(r.evaluations), _fmt(r.last_eval_mean, ".1f")]
            + ([unreached if not (r.solved or r.error) else ""] if report.quick else [])
            for r in report.solve_runs]
    if report.quick and any(row[-1] for row in rows):
        lines.append(format_table([*headers, "note"], rows, left=(0, -1)))
    else:
        lines.append(format_table(headers, [row[:len(headers)] for row in rows]))
    ours, theirs, ratio = time_to_solve_medians(report)
    counts = {side: f"{sum(r.solved for r in _side_runs(report.solve_runs, side))}/"
                    f"{sum(r.side == side for r in report.solve_runs)}" for side in ("pgcourse", "sb3")}
    if report.quick and any(not r.solved for r in _side_runs(report.solve_runs, "pgcourse") +
                            _side_runs(report.solve_runs, "sb3")):
        return lines + _wrap(f"median time to solve: not given (pgcourse {counts['pgcourse']} solved, SB3 "
                             f"{counts['sb3']} solved): a run {unreached}")
    line = (f"median time to solve: pgcourse {_fmt(ours, '.2f')} s ({counts['pgcourse']} solved), SB3 "
            f"{_fmt(theirs, '.2f')} s ({counts['sb3']} solved)")
    if ratio is not None:
        line += (f"; ratio pgcourse / SB3 = {ratio:.2f} ({goal_verdict(ratio <= SPEED_TARGET, f'<= {SPEED_TARGET:.2f}')})")
    lines += _wrap(line + ". A seed that did not solve counts with its whole-budget time (>=). *pgcourse: evaluations "
                          "and set-up (the wall time its history leaves out); SB3: evaluations.")
    return lines


def goal_verdict(met: bool, target: str) -> str:
    """A speed goal's verdict, worded as what it is: the project's goal for its own code, measured here -- not a
    test of the user's install (a 'MISSED' read as 'your install is broken')."""
    return f"project goal {target}: {'met' if met else 'not met yet'} on this machine"


def throughput_lines(report: BenchReport) -> list[str]:
    settings = report.comparisons
    if settings is None or not report.throughput_runs:
        return []
    lines = _wrap(f"(b) throughput at equal work: {settings.throughput_steps:,} env steps of PPO {SB3_ENV_ID} with "
                  "rl-zoo's settings on both sides (8 envs x 32 steps, minibatch 256, 20 epochs, gamma 0.98, lambda "
                  "0.8, lr 1e-3 annealed), no evaluation while training; timed: pgcourse's whole pg.train call, SB3's "
                  "model.learn. Seed by seed, pgcourse then SB3."
                  + (f" Quick: {settings.throughput_steps:,} steps on {len(settings.throughput_seeds)} seed(s), so "
                     "start-up weighs more than in the full run's 100,000 steps on 3 seeds." if report.quick else ""))
    if (missing := _sb3_missing_line(report)) is not None:
        lines.append(missing)
    headers = ["side", "seed", "env steps", "wall s", "env steps/s", "final mean (not timed)"]
    rows = [[r.side, str(r.seed), _fmt(r.env_steps), _fmt(r.wall_seconds, ".1f"), _fmt(r.steps_per_second),
             r.error or _fmt(r.final_mean, ".1f")] for r in report.throughput_runs]
    lines.append(format_table(headers, rows))
    ours, theirs, ratio = throughput_medians(report)
    line = f"median env steps/s: pgcourse {_fmt(ours)}, SB3 {_fmt(theirs)}"
    if ratio is not None:
        line += (f"; ratio pgcourse / SB3 = {ratio:.2f}x "
                 f"({goal_verdict(ratio >= THROUGHPUT_TARGET, f'>= {THROUGHPUT_TARGET:g}x')})")
    lines.append(line)
    return lines


def sb3_lines(report: BenchReport) -> list[str]:
    """The old rule: pgcourse's suite time to solve (learning alone) / SB3's whole 100k-step run."""
    if report.sb3_skipped:
        return [f"SB3 comparison: {report.sb3_skipped}"]
    if report.quick and report.sb3_results:
        return _wrap(f"the old rule (pgcourse's suite time to solve / SB3's whole 100,000-step run): not given, SB3 "
                     f"ran {report.sb3_timesteps:,} steps within the quick budget: run without --quick for the full "
                     "comparison")
    results = report.sb3_results
    if not results:
        return []
    walls = [r.wall_seconds for r in results]
    finals = [r.final_mean for r in results]
    lines = _wrap(f"SB3 PPO {SB3_ENV_ID} (rl-zoo hyperparameters, {report.sb3_timesteps:,} steps, cpu): "
                  f"{sum(r.solved for r in results)}/{len(results)} seeds solved, final "
                  f"{statistics.fmean(finals):.1f} ± {statistics.pstdev(finals):.1f}, "
                  f"median wall {statistics.median(walls):.1f} s per run")
    ratio = speed_ratio(report)
    ppo = [r for r in report.results if r.algo == "ppo" and r.env_id == SB3_ENV_ID and r.error is None]
    if ratio is None:
        lines += _wrap(f"speed ratio: n/a (old rule; pgcourse PPO solved {SB3_ENV_ID} in the suite on "
                       f"{sum(r.solved for r in ppo)}/{len(ppo)} seeds; the ratio needs at least one)")
    else:
        ours = _median([r.solved_wall_seconds for r in ppo if r.solved])
        verdict = "met" if ratio <= OLD_RULE_TARGET else "not met"
        lines += _wrap(f"speed ratio: {ours:.1f} / {statistics.median(walls):.1f} = {ratio:.2f}, the old rule, not "
                       f"like with like: median pgcourse PPO wall s to solve {SB3_ENV_ID} in the suite (learning alone, "
                       f"evaluations left out) / median SB3 {report.sb3_timesteps:,}-step wall s (old target <= "
                       f"{OLD_RULE_TARGET:.2f}: {verdict}; {sum(r.solved for r in ppo)}/{len(ppo)} pgcourse seeds solved)")
    return lines


def print_report(report: BenchReport, file: TextIO | None = None) -> None:
    """Print the machine, the summary and per-seed tables, the comparisons with SB3 and the extra sections."""
    file = file or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=file)

    say()
    if report.tiny:
        say(f"(test mode {TINY_ENV_VAR}=1: tiny budgets, the numbers mean nothing)")
    if report.quick:
        for line in _wrap("--quick: a fraction of the full budgets and seeds (learning rates that anneal do so over "
                          "the smaller budget), so the numbers are indicative; where a quick budget did not reach "
                          "the stop rule the row says so instead of giving a number. The full comparison: "
                          "`pgcourse bench` without --quick."):
            say(line)
    for line in machine_lines(report):
        say(line)
    say(f"pgcourse benchmark: seeds {report.seeds}, device {report.device}, torch threads 1 "
        "(pgcourse and SB3 alike, for a fair comparison)")
    if report.cases:
        envs = sorted({c.env_id for c in report.cases})
        sampled = [env for env in envs if EVAL_MODE_DEFAULTS.get(env) == "sample"]
        say(f"solved = mean return of {EVAL_EPISODES} evaluation episodes (seeds {EVAL_SEED}.."
            f"{EVAL_SEED + EVAL_EPISODES - 1}) >= threshold "
            + ", ".join(f"{env}: {SOLVE_THRESHOLDS[env]:g}" for env in envs if env in SOLVE_THRESHOLDS)
            + "; greedy actions" + (f", sampled on {', '.join(sampled)} (its eval_mode)" if sampled else ""))
        say("steps/episodes/wall to solve: first evaluation reaching it, medians over solved seeds; "
            "wall seconds exclude evaluation time")
        say(f"final = the final policy's {EVAL_EPISODES}-episode mean; the table shows its mean ± std and min over "
            "seeds; steps/s = env steps trained on / training wall seconds")
        if report.stop_when_solved:
            say("stop_when_solved: on. Training ends at the first evaluation that solves, so the 'final' "
                "evaluation is of the policy at solve time.")
        say()
        say(summary_table(report))
        say()
        say("per seed:")
        say(detail_table(report))
    for block in (time_to_solve_lines(report), throughput_lines(report)):
        if block:
            say()
            for line in block:
                say(line)
    old_rule = sb3_lines(report)
    if old_rule:
        say()
        if report.comparisons is not None and not report.sb3_skipped:
            say("(c) the old rule, kept to compare with earlier reports:")
        for line in old_rule:
            say(line)
    for section in report.extra_sections:
        say()
        say(section.title)
        for line in section.lines:
            say(line)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_to_dict(report: BenchReport) -> dict[str, Any]:
    def rows(items: Sequence[Any]) -> list[dict[str, Any]]:
        return [{k: _clean(v) for k, v in dataclasses.asdict(item).items()} for item in items]

    data: dict[str, Any] = {
        "command": report.command,
        "machine": report.machine,
        "settings": {"seeds": report.seeds, "device": report.device, "stop_when_solved": report.stop_when_solved,
                     "eval_episodes": EVAL_EPISODES, "eval_seed": EVAL_SEED, "torch_threads": 1,
                     "tiny_test_mode": report.tiny, "quick": report.quick, "cases": rows(report.cases)},
        "results": rows(report.results),
        "summary": rows([summarize_case(case, report.results) for case in report.cases]),
        "sb3": {"skipped": report.sb3_skipped, "timesteps": report.sb3_timesteps,
                "results": rows(report.sb3_results), "speed_ratio": _clean(speed_ratio(report)),
                "target": SPEED_TARGET, "rule": "old: suite time to solve (learning alone) / SB3 whole-budget run"},
        "comparisons": None,
        "extra_sections": [{"title": s.title, "lines": s.lines, "data": s.data} for s in report.extra_sections],
    }
    if report.quick:
        for row, case in zip(data["summary"], report.cases):
            row["note"] = quick_case_note(summarize_case(case, report.results)) or None
    if report.comparisons is not None:
        ours_s, theirs_s, solve_ratio = time_to_solve_medians(report)
        ours_t, theirs_t, throughput_ratio = throughput_medians(report)
        throughput_rows = rows(report.throughput_runs)
        for row, run in zip(throughput_rows, report.throughput_runs):
            row["steps_per_second"] = _clean(run.steps_per_second)
        data["comparisons"] = {
            "settings": dataclasses.asdict(report.comparisons),
            "zoo_hyperparameters": ZOO_PPO_CARTPOLE, "pgcourse_at_zoo_settings": PGCOURSE_AT_ZOO_SETTINGS,
            "time_to_solve": {"runs": rows(report.solve_runs), "pgcourse_median_seconds": ours_s,
                              "sb3_median_seconds": theirs_s, "ratio": solve_ratio, "target": SPEED_TARGET},
            "throughput": {"runs": throughput_rows, "pgcourse_median_steps_per_second": ours_t,
                           "sb3_median_steps_per_second": theirs_t, "ratio": throughput_ratio,
                           "target": THROUGHPUT_TARGET},
        }
    return data


def write_json(report: BenchReport, path: str | os.PathLike) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report_to_dict(report), indent=1))
    return target


