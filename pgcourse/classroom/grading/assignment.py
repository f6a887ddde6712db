"""One assignment of a term: its name, points, deadline and late policy, partial credit.

A teacher sets them on the command line (``--deadline``, ``--late-penalty``, ``--grace``, ``--name``,
``--partial-credit``, ``--hide-expected``) or once per assignment in a TOML file (``--assignment
hw2.toml``; the command line wins)::

    name = "HW2"                          # the gradebook column (default: the chapter's name)
    chapter = "02"                        # as --chapter
    deadline = "2025-03-14T23:59+01:00"   # ISO 8601; without a zone: this machine's local time
    late_penalty = "10%/day"              # per started day (or hour) late, of the points possible
    grace = "15m"                         # lateness within the grace period is not counted
    partial_credit = true                 # points for the cases a failing answer gets right
    hide_expected = true                  # feedback files do not show the checks' expected values

    [points]                              # points per exercise, replacing the course notebook's
    ch02_value_loss = 3
    ch02_gradient_variance = 0            # 0: graded and shown, but worth nothing

Points otherwise live in the course's notebook (the check cell's nbgrader ``points`` in
``solutions/NN_name.ipynb``, else ``exercises/``): editing the handed-out copy changes nothing.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .course import Chapter, GradingError
from .identity import iso, parse_time

UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400, "w": 604800, "week": 604800}
_PENALTY = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<percent>%|pt|pts|points?)?\s*"
                      r"(?:/\s*(?P<unit>day|hour|d|h))?\s*$")
_DURATION = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>s|m|min|h|hour|d|day|w|week)s?\s*$")


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``15m``, ``2h``, ``1d``; :class:`GradingError` naming ``option`` otherwise."""
    match = _DURATION.match(str(text))
    if match is None:
        raise GradingError(f"{option} {text!r}: expected a duration such as 15m, 2h or 1d")
    return float(match["amount"]) * UNITS[match["unit"]]


@dataclass(frozen=True)
class LatePolicy:
    """A deadline and what lateness costs: ``amount`` per started ``unit_s`` past ``deadline + grace_s`` (once,
    when ``unit_s`` is 0), as a fraction of the points possible (``percent``) or in points."""

    deadline: datetime | None = None
    amount: float = 0.0
    percent: bool = True
    unit_s: float = 0.0
    grace_s: float = 0.0
    text: str = ""

    @classmethod
    def parse(cls, deadline: str | None, penalty: str | None, grace: str | None) -> LatePolicy:
        if deadline is None:
            if penalty or grace:
                raise GradingError("--late-penalty and --grace need a --deadline")
            return cls()
        moment = parse_time(deadline, "--deadline")
        amount, percent, unit_s = 0.0, True, 0.0
        if penalty:
            match = _PENALTY.match(penalty)
            if match is None:
                raise GradingError(f"--late-penalty {penalty!r}: expected e.g. 10%/day, 2%/hour, 1pt/day or 100% "
                                   "(a late submission gets nothing)")
            amount, percent = float(match["amount"]), match["percent"] in (None, "%")
            unit_s = float(UNITS[match["unit"]]) if match["unit"] else 0.0
            if percent and amount > 100:
                raise GradingError(f"--late-penalty {penalty!r}: a percentage above 100% takes more than the points")
        grace_s = parse_duration(grace, "--grace") if grace else 0.0
        return cls(moment, amount, percent, unit_s, grace_s, penalty or "")

    def describe(self) -> str:
        if self.deadline is None:
            return "no deadline"
        cost = f", late penalty {self.text}" if self.text else ", no late penalty"
        grace = f", grace {self.grace_s / 60:g} min" if self.grace_s else ""
        return f"deadline {iso(self.deadline)}{grace}{cost}"

    def lateness(self, submitted: datetime | None) -> float:
        """Seconds late (after the grace period); 0 when on time or when no deadline is set."""
        if self.deadline is None or submitted is None:
            return 0.0
        return max(0.0, (submitted - self.deadline).total_seconds() - self.grace_s)

    def penalty(self, late_s: float, max_points: float, units: int | None = None) -> tuple[float, int]:
        """(points taken, units charged) for ``late_s`` seconds late (``units`` forces the count)."""
        if late_s <= 0 and units is None:
            return 0.0, 0
        if units is None:
            units = math.ceil(late_s / self.unit_s) if self.unit_s else 1
        per_unit = self.amount / 100 * max_points if self.percent else self.amount
        return min(max_points, round(per_unit * units, 6)), units

    def unit_name(self) -> str:
        return {0.0: "", 3600.0: "hour", 86400.0: "day"}.get(self.unit_s, f"{self.unit_s:g} s")

    def to_json(self) -> dict[str, Any]:
        if self.deadline is None:
            return {}
        return {"deadline": iso(self.deadline), "late_penalty": self.text, "grace_s": self.grace_s}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatePolicy:
        if not data or not data.get("deadline"):
            return cls()
        grace = data.get("grace_s") or 0
        return cls.parse(data["deadline"], data.get("late_penalty") or None, f"{grace}s" if grace else None)


@dataclass
class Assignment:
    """What a teacher set for one assignment (file and options merged; see the module's docstring)."""

    name: str | None = None
    chapter: str | None = None
    points: dict[str, float] = field(default_factory=dict)
    policy: LatePolicy = field(default_factory=LatePolicy)
    partial_credit: bool | None = None   # None: not said (off, or as in the gradebook being updated)
    hide_expected: bool | None = None
    source: str = ""

    def inherit(self, gradebook: dict[str, Any]) -> None:
        """Take what this run does not set from the gradebook it updates (``--update``), so that a re-grade or
        a merge uses the same points, name, late policy, partial credit and feedback setting."""
        exercises = [e for e in gradebook.get("exercises", []) if isinstance(e, dict) and "id" in e]
        if not self.points:
            self.points = {e["id"]: float(e["points"]) for e in exercises if isinstance(e.get("points"), int | float)}
        if self.partial_credit is None:
            self.partial_credit = any(e.get("partial_credit") for e in exercises)
        if self.hide_expected is None:
            self.hide_expected = bool(gradebook.get("settings", {}).get("hide_expected"))
        if self.name is None and gradebook.get("assignment") != gradebook.get("chapter"):
            self.name = gradebook.get("assignment")
        if self.chapter is None:
            self.chapter = gradebook.get("chapter")
        if self.policy.deadline is None:
            self.policy = LatePolicy.from_json(gradebook.get("late_policy", {}))

    def apply(self, chapter: Chapter) -> Chapter:
        """The chapter with this assignment's points and partial-credit setting."""
        known = {exercise.id for exercise in chapter.exercises}
        unknown = sorted(set(self.points) - known)
        if unknown:
            raise GradingError(f"{self.source or 'points'}: {', '.join(unknown)} is not an exercise of {chapter.name}; "
                               f"its exercises are {', '.join(sorted(known))}")
        exercises = [replace(exercise, points=self.points.get(exercise.id, exercise.points),
                             partial=bool(self.partial_credit) and exercise.kind == "auto")
                     for exercise in chapter.exercises]
        return replace(chapter, exercises=exercises)


ASSIGNMENT_KEYS = {"name": str, "chapter": str, "deadline": str, "late_penalty": str, "grace": str,
                   "partial_credit": bool, "hide_expected": bool, "points": dict}


def read_assignment_file(path: str | Path) -> dict[str, Any]:
    """The settings in an assignment file, checked; :class:`GradingError` says what is wrong and what is expected."""
    where = f"--assignment {path}"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GradingError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise GradingError(f"{where}: cannot be read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise GradingError(f"{where}: not valid TOML ({error})") from None
    for key, value in data.items():
        if key not in ASSIGNMENT_KEYS:
            raise GradingError(f"{where}: unknown setting {key!r}; expected one of {', '.join(ASSIGNMENT_KEYS)}")
        if isinstance(value, datetime):  # TOML's own date-time: accepted as the deadline
            data[key] = value = value.isoformat()
        if not isinstance(value, ASSIGNMENT_KEYS[key]):
            raise GradingError(f"{where}: {key} must be a {ASSIGNMENT_KEYS[key].__name__}, got {value!r}")
    for exercise, points in data.get("points", {}).items():
        if isinstance(points, bool) or not isinstance(points, int | float) or not math.isfinite(points) or points < 0:
            raise GradingError(f"{where}: points for {exercise} must be a number ≥ 0, got {points!r}")
    return data


def make_assignment(file: str | Path | None = None, *, name: str | None = None, chapter: str | None = None,
                    deadline: str | None = None, late_penalty: str | None = None, grace: str | None = None,
                    partial_credit: bool | None = None, hide_expected: bool | None = None) -> Assignment:
    """The assignment from its file (if any) and the options given (which win)."""
    data = read_assignment_file(file) if file else {}
    pick = (lambda given, key: given if given is not None else data.get(key))  # noqa: E731
    policy = LatePolicy.parse(pick(deadline, "deadline"), pick(late_penalty, "late_penalty"), pick(grace, "grace"))
    return Assignment(name=pick(name, "name"), chapter=pick(chapter, "chapter"),
                      points={k: float(v) for k, v in data.get("points", {}).items()}, policy=policy,
                      partial_credit=pick(partial_credit, "partial_credit"),
                      hide_expected=pick(hide_expected, "hide_expected"),
                      source=f"--assignment {file}" if file else "")
