"""The bug hunt's evidence: where a mystery first parts from its correct twin, and in which column.

An answer of the bug hunt names its evidence: a signal of ``pg.diagnose`` (:data:`~.signals.SIGNALS`), an update
and the value the mystery logged there in one of the columns that signal reads (:data:`EVIDENCE_COLUMNS`). The
evidence holds when that update is the first at which the signal's columns part from the mystery's **correct
twin** (the same settings and seed, no bug), and the named column is one that parts there: where the signal first
shows the bug. (Later updates differ anyway: two runs that parted once never meet again.)

"Parts" means any difference beyond float noise: a relative difference ``|mystery - twin| / max(|twin|, FLOOR)``
above :data:`TOLERANCE`. Every hunt ships each mystery with its twin, both recorded on one machine in one process
(the practice six in ``mysteries/twins/``, a hunt made for a student in its folder), so before the bug acts the two
are equal to the last bit and the first difference is the bug's.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

# The columns of run.history.updates in which each signal can be read at one update. "return trend" and "updates
# per episode" are read over episodes, not at an update: an answer's evidence is given in another of its signals.
EVIDENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "non-finite log-probs/losses": ("policy_loss", "value_loss"),
    "entropy": ("entropy",),
    "policy std": ("log_std_mean",),
    "advantage scale": ("advantage_std",),
    "explained variance": ("explained_variance", "value_rel_error"),
    "KL / clip fraction": ("approx_kl", "clip_fraction"),
    "grad norms": ("actor_grad_norm", "critic_grad_norm"),
}
COLUMNS = tuple(dict.fromkeys(c for columns in EVIDENCE_COLUMNS.values() for c in columns))
FLOOR = 1e-3  # relative differences are taken against max(|twin|, FLOOR): a loss or a KL can be ~0
TOLERANCE = 1e-6  # above: the runs differ (both recorded together, they are bit-equal until the bug acts)
MATCH_RTOL = 5e-4  # a learner's value "is" the logged one to four significant figures (copied from a table)


def parted_columns(mystery: dict[str, list[float]], twin: dict[str, list[float]], update: int,
                   columns: tuple[str, ...] = COLUMNS) -> list[str]:
    """The ``columns`` in which ``mystery`` (a history's ``updates`` table) parts from ``twin`` at ``update``
    (counted from 1): NaN against NaN is equal, NaN against a number parts."""
    parted = []
    for column in columns:
        a, b = float(mystery[column][update - 1]), float(twin[column][update - 1])
        if math.isnan(a) and math.isnan(b):
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            relative = abs(a - b) / max(abs(b), FLOOR) if math.isfinite(a) and math.isfinite(b) else math.inf
        if not relative <= TOLERANCE:
            parted.append(column)
    return parted


def first_parting(mystery: dict[str, list[float]], twin: dict[str, list[float]],
                  columns: tuple[str, ...] = COLUMNS) -> tuple[int, list[str]] | None:
    """``(update, columns)``: the first update at which ``mystery`` parts from ``twin`` in ``columns`` and those
    that part there; None if it never does (then its bug left no mark on them)."""
    updates = min(len(mystery["env_step"]), len(twin["env_step"]))
    for update in range(1, updates + 1):
        parted = parted_columns(mystery, twin, update, columns)
        if parted:
            return update, parted
    return None


def partings(mystery: dict[str, list[float]], twin: dict[str, list[float]]) -> dict[str, tuple[int, dict]]:
    """Where each signal of :data:`EVIDENCE_COLUMNS` first parts from the twin's: ``{signal: (update, {column:
    (mystery's value, twin's value)})}`` for the columns that part there; a signal that never parts is absent. This
    is the data of an answer's evidence (it says nothing about which bug moved them)."""
    found = {}
    for signal, columns in EVIDENCE_COLUMNS.items():
        parting = first_parting(mystery, twin, columns)
        if parting is not None:
            update, parted = parting
            found[signal] = (update, {c: (float(mystery[c][update - 1]), float(twin[c][update - 1])) for c in parted})
    return found


def matches(value: float, logged: float) -> bool:
    """Whether a learner's ``value`` is the ``logged`` one, to four significant figures (NaN is NaN)."""
    if math.isnan(logged) or math.isnan(value):
        return math.isnan(logged) and math.isnan(value)
    if math.isinf(logged) or math.isinf(value):
        return value == logged
    return abs(value - logged) <= MATCH_RTOL * abs(logged) + 1e-12


def parse_evidence(evidence: Any) -> tuple[int, float] | str:
    """``(update, value)`` from a learner's evidence, or the message that says what is wrong with it."""
    if not isinstance(evidence, (tuple, list)) or len(evidence) != 2:
        return (f"the evidence is a pair (update, value): the update (counted from 1) where the mystery first parts "
                f"from its correct twin and the value the mystery logged there, e.g. (1, 0.0412); got {evidence!r}")
    update, value = evidence
    if isinstance(update, (float, np.floating)) and float(update).is_integer():
        update = int(update)  # 3.0 is update 3
    if isinstance(update, bool) or not isinstance(update, (int, np.integer)) or update < 1:
        return f"the evidence's update is an int from 1 (the first update is 1), got {update!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"the evidence's value is a number read from the mystery's history, got {value!r}"
    return int(update), float(value)


def judge_evidence(mystery: dict[str, list[float]], twin: dict[str, list[float]], signal: str,
                   evidence: Any) -> str | None:
    """None when ``evidence`` = (update, value) is the value ``mystery`` logged in a column of ``signal`` at the
    first update where that signal's columns part from ``twin``, in a column that parts there; otherwise what is
    wrong, in words (never which bug it is)."""
    parsed = parse_evidence(evidence)
    if isinstance(parsed, str):
        return parsed
    update, value = parsed
    columns = EVIDENCE_COLUMNS.get(signal)
    if not columns:
        return (f"{signal!r} is read over episodes, not at one update: give the evidence in another signal the bug "
                f"moves, one read per update: {list(EVIDENCE_COLUMNS)}")
    updates = len(mystery["env_step"])
    if update > updates:
        return f"update {update} is past the run's last update ({updates})"
    logged = {c: float(mystery[c][update - 1]) for c in columns}
    found = [c for c, x in logged.items() if matches(value, x)]
    if not found:
        shown = ", ".join(f"{c} {x:.4g}" for c, x in logged.items())
        return (f"at update {update} the mystery logged {shown} in the columns of {signal!r}, not {value!r}: copy "
                f"the value from m.history.updates[column][{update - 1}]")
    parting = first_parting(mystery, twin, columns)
    if parting is None:
        return f"the mystery never parts from its correct twin in {signal!r} ({', '.join(columns)})"
    first, parted = parting
    if update > first:
        return (f"{signal!r} had already parted from the correct twin's before update {update}; the evidence is the "
                "first update where it parts (after that, two runs differ anyway)")
    if update < first:
        return (f"at update {update} the mystery's {signal!r} still equals its correct twin's: "
                "the evidence is where it first parts")
    if not set(found) & set(parted):
        return (f"at update {update} the mystery parts from its twin, but not in {found[0]} (it matches the twin's "
                "there): read the columns that do part")
    return None
