"""How long the exercise checks take on the course's own answers: the speed goal the test suite used to assert.

A learner runs a check after every exercise, so a check should answer at once: each exercise check within
``CHECK_GOAL_S`` and each stage check of the from-scratch loops (01, 04b) within ``STAGE_GOAL_S``, on the
reference answer, after one warm-up call (the first call loads torch kernels). Seconds are facts about this
machine at this moment, so they live here, printed with the load beside them, never in a test (issue 50).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

CHECK_GOAL_S = 0.5
STAGE_GOAL_S = 2.0
FAST_STAGES = ("collect_episodes", "reinforce_update", "collect_rollout", "advantages_and_returns", "ppo_update")


def seconds_of(check: Callable[[Any], Any], answer: Any, repeats: int = 2) -> float:
    """The fastest of ``repeats`` calls of ``check(answer)`` after one warm-up call, in wall seconds."""
    check(answer)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        check(answer)
        times.append(time.perf_counter() - started)
    return min(times)


def measure_checks() -> dict[str, Any]:
    """Every exercise check and fast stage check on its reference: seconds per check, and which miss the goal."""
    from ..course import checks

    exercise = {name: seconds_of(check, checks.REFERENCES[name]) for name, check in checks.ALL_CHECKS.items()}
    stages = {name: seconds_of(checks.STAGE_CHECKS[name], checks.STAGE_REFERENCES[name]) for name in FAST_STAGES}
    return {"exercise_checks": exercise, "stage_checks": stages,
            "over_goal": sorted([name for name, s in exercise.items() if s > CHECK_GOAL_S]
                                + [name for name, s in stages.items() if s > STAGE_GOAL_S]),
            "goals_s": {"exercise_check": CHECK_GOAL_S, "stage_check": STAGE_GOAL_S},
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def lines(data: dict[str, Any]) -> list[str]:
    """The section's printed lines: the slowest checks of each kind and the verdict against the goals."""
    out = []
    for kind, goal in (("exercise_checks", CHECK_GOAL_S), ("stage_checks", STAGE_GOAL_S)):
        timed = sorted(data[kind].items(), key=lambda item: -item[1])
        slowest = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timed[:3])
        out.append(f"  {len(timed)} {kind.replace('_', ' ')} (goal: each within {goal:g} s); slowest: {slowest}")
    load = data["load_average"]
    out.append(f"  over the goal: {', '.join(data['over_goal']) or 'none'}"
               + (f" (load average {load[0]:.1f} on {os.cpu_count()} cores)" if load else ""))
    return out
