"""How a re-run agrees with a stored run: bit for bit, within a tolerance, or inside the stored seeds' spread.

Reinforcement learning amplifies the last bit. Another processor (another SIMD kernel path), another
thread count (another order of a sum's terms) or another torch release rounds one gradient norm
differently in its 8th digit; a few updates later one sampled action differs, an episode ends a step
earlier, and from there the two runs are different draws of the same experiment. So a cached result is
checked on a learner's machine at three levels, strongest first, and each is said for what it is:

1. **bit for bit** (:func:`compare`): every stored number is reproduced exactly. A fact about *this*
   machine — printed, never asserted across machines.
2. **within a tolerance** (:func:`compare` with ``rtol``): every number agrees to a relative tolerance the
   computation justifies (float32 training rounds at about 1e-7 per operation; 1e-4 leaves room for a few
   thousand accumulated roundings). Holds for short computations that never branch on a sampled value.
3. **inside the spread** (:func:`spread_check`): the re-run's summary (say, its mean episode return) lies
   inside the range the stored seeds of the same setting cover, widened by twice that range's width on
   each side. This is what a correct re-run satisfies on any machine, all but very rarely.

Why that widening: for ``n`` exchangeable draws a new one falls outside their ``[min, max]`` with
probability ``2 / (n + 1)`` (18% for ten seeds) — too often for a check that must pass every correct
re-run. Widening by twice the range on each side makes a miss need a re-run further from the nearest
stored seed than twice the whole spread of the stored seeds. Simulated (tests/test_agreement.py): with
ten normal seeds a new draw misses 5e-5 of the time (0.2% when widened by one range only); with nine,
1.4e-4. The price is a loose check: it must pass every correct re-run, so it accepts much more (on
CartPole, where seeds spread widely, the widened range can hold every possible return). It shows a
re-run is not far off; it cannot tell one setting from a neighbouring one. What tells an honest re-run
from an edited number or changed code is :func:`divergence_onset`: where the runs first part, they part
by a rounding difference. ``min_width`` keeps a range of identical values (ten CartPole runs all at 500)
from demanding exactly that value again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Agreement", "SpreadCheck", "compare", "spread_check"]


@dataclass(frozen=True)
class Agreement:
    """The result of :func:`compare`: how a re-run's numbers agree with the stored ones.

    Attributes:
        identical: every value equal, bit for bit (NaN equals NaN).
        close: every number within ``|again - stored| <= atol + rtol * |stored|``, every non-number equal
            and every list of the same length.
        rtol, atol: the tolerance ``close`` was judged with.
        compared: how many leaf values were compared.
        first_difference: where the two first differ at all (``"updates.loss[3]: 0.41 vs 0.41000003"``),
            None if identical.
        first_apart: where they first differ beyond the tolerance, None if close.
    """

    identical: bool
    close: bool
    rtol: float
    atol: float
    compared: int
    first_difference: str | None
    first_apart: str | None

    @property
    def level(self) -> str:
        """``"bit for bit"``, ``"within tolerance"`` or ``"apart"``."""
        return "bit for bit" if self.identical else "within tolerance" if self.close else "apart"

    def __str__(self) -> str:
        if self.identical:
            return f"bit for bit on this machine: True ({self.compared:,} values)"
        text = (f"bit for bit on this machine: False (as expected where another CPU, thread count or torch rounds "
                f"differently; first difference {self.first_difference}); within rtol {self.rtol:g}: {self.close}")
        return text if self.close else f"{text} (first apart {self.first_apart})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _same(stored: Any, again: Any) -> bool:
    if _is_number(stored) and _is_number(again):
        if isinstance(stored, (float, np.floating)) and isinstance(again, (float, np.floating)) \
                and math.isnan(stored) and math.isnan(again):
            return True
    return bool(stored == again)


def _near(stored: Any, again: Any, rtol: float, atol: float) -> bool:
    if _is_number(stored) and _is_number(again):
        stored, again = float(stored), float(again)
        if math.isnan(stored) or math.isnan(again):
            return math.isnan(stored) and math.isnan(again)
        if math.isinf(stored) or math.isinf(again):
            return stored == again
        return abs(again - stored) <= atol + rtol * abs(stored)
    return _same(stored, again)


def _as_plain(value: Any) -> Any:
    """Arrays and tensors as nested lists, so one walk handles every container."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def compare(stored: Any, again: Any, rtol: float = 1e-4, atol: float = 1e-8) -> Agreement:
    """Compare a re-run's values with stored ones: nested dicts, lists, arrays, tensors and scalars.

    Args:
        stored: what was saved (e.g. a trial's history as JSON, a list of losses).
        again: the same computation re-run here, in the same structure.
        rtol, atol: ``close`` needs ``|again - stored| <= atol + rtol * |stored|`` for every number
            (``None`` in ``stored`` stands for a non-finite value JSON could not hold and must match
            ``None`` or NaN).

    Returns:
        An :class:`Agreement`; ``str()`` of it is the sentence a lesson prints.
    """
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be >= 0, got rtol={rtol!r}, atol={atol!r}")
    state = {"compared": 0, "difference": None, "apart": None}

    def note(key: str, where: str, text: str) -> None:
        if state[key] is None:
            state[key] = f"{where or 'value'}: {text}"

    def walk(a: Any, b: Any, where: str) -> None:
        a, b = _as_plain(a), _as_plain(b)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                path = f"{where}.{key}" if where else str(key)
                if key not in a or key not in b:
                    missing = "stored" if key not in a else "re-run"
                    note("difference", path, f"absent from the {missing} values")
                    note("apart", path, f"absent from the {missing} values")
                    continue
                walk(a[key], b[key], path)
            return
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                note("difference", where, f"{len(a)} entries stored vs {len(b)} re-run")
                note("apart", where, f"{len(a)} entries stored vs {len(b)} re-run")
            for index, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{index}]")
            return
        state["compared"] += 1
        if a is None and _is_number(b) and not math.isfinite(float(b)):
            return  # JSON stores a non-finite float as null
        if not _same(a, b):
            note("difference", where, f"stored {a!r} vs re-run {b!r}")
            if not _near(a, b, rtol, atol):
                note("apart", where, f"stored {a!r} vs re-run {b!r}")

    walk(stored, again, "")
    return Agreement(identical=state["difference"] is None, close=state["apart"] is None, rtol=rtol, atol=atol,
                     compared=state["compared"], first_difference=state["difference"], first_apart=state["apart"])


@dataclass(frozen=True)
class SpreadCheck:
    """The result of :func:`spread_check`: is one re-run's summary inside the stored seeds' widened range?

    Attributes:
        value: the re-run's summary (e.g. its mean episode return).
        low, high: the accepted range, ``[min - 2w, max + 2w]`` with ``w = max(max - min, min_width)``.
        smallest, largest: the stored seeds' own range.
        seeds: how many stored values the range was built from.
    """

    value: float
    low: float
    high: float
    smallest: float
    largest: float
    seeds: int

    @property
    def inside(self) -> bool:
        return bool(self.low <= self.value <= self.high)

    def __str__(self) -> str:
        where = "inside" if self.inside else "OUTSIDE"
        return (f"{self.value:.4g} {where} [{self.low:.4g}, {self.high:.4g}] (the {self.seeds} stored seeds span "
                f"[{self.smallest:.4g}, {self.largest:.4g}], widened by twice that width on each side)")


def spread_check(value: float, stored: Any, min_width: float | None = None) -> SpreadCheck:
    """Whether ``value`` (one re-run's summary) lies inside the stored seeds' range, widened by twice its width.

    Args:
        value: the re-run's summary statistic, a finite number.
        stored: ``[n]`` the same statistic for the stored seeds of the same setting (n >= 2; NaN dropped).
        min_width: the least width ``w`` used for widening (default: 2.5% of the largest ``|stored|``, so ten
            runs that all scored 500 accept 475 to 525).

    The accepted range is ``[min - 2w, max + 2w]``, ``w = max(max - min, min_width)``; see the module
    docstring for why a correct re-run lands inside with high probability.
    """
    values = np.asarray(stored, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError(f"a spread needs at least 2 stored finite values, got {values.size}")
    value = float(value)
    smallest, largest = float(values.min()), float(values.max())
    floor = 0.025 * float(np.abs(values).max()) if min_width is None else float(min_width)
    if not floor >= 0:
        raise ValueError(f"min_width must be >= 0, got {min_width!r}")
    width = max(largest - smallest, floor)
    return SpreadCheck(value=value, low=smallest - 2 * width, high=largest + 2 * width, smallest=smallest,
                       largest=largest, seeds=int(values.size))


@dataclass(frozen=True)
class Onset:
    """Where, in training time, a re-run's history first leaves the stored one (:func:`divergence_onset`).

    Attributes:
        table, row: the first differing row (``"updates"``, 0).
        env_step: the env step of that row.
        rounding: at least half of the row's differing columns (and at least one) agree within the tolerance (relative to each column's
            largest stored magnitude, since a loss of cancelling terms rounds at its terms' scale): the runs
            parted over rounding, as on another processor. A few columns may differ by more, because their
            value *is* cancellation noise (a surrogate at the old policy with centred advantages is ~1e-8 of
            noise; a conjugate-gradient residual sits at the solver's tolerance, and a history stored rounded
            shows a drift only once it has grown past the rounding: one column of a sampled language-model run
            visibly beyond, the other within, was seen on an AMX Xeon). False: the first row that
            differs differs mostly by more than rounding — one edited number alone in an identical row, or
            code that computes something else.
        detail: how many differing columns agree within tolerance, and the first column beyond it (or the
            first that differs) with both values.
    """

    table: str
    row: int
    env_step: float
    rounding: bool
    detail: str

    def __str__(self) -> str:
        kind = "a rounding difference" if self.rounding else "a difference larger than rounding"
        return f"first apart at env step {self.env_step:g} ({self.table}[{self.row}]: {kind}; {self.detail})"


def _column_scale(values: list) -> float:
    """The largest finite magnitude in a column: a loss that is a sum of cancelling terms (a policy loss
    with centred advantages, ~1e-5 where its terms are ~1) rounds at the scale of its terms, not its value."""
    finite = [abs(float(v)) for v in values if _is_number(v) and math.isfinite(float(v))]
    return max(finite, default=0.0)


def divergence_onset(stored: dict[str, dict[str, list]], again: dict[str, dict[str, list]],
                     tables: tuple[str, ...] = ("episodes", "updates", "evals"), rtol: float = 1e-4,
                     atol: float = 1e-8, step_column: str = "env_step") -> Onset | None:
    """The earliest row, in env steps, at which two histories differ; None if every row is identical.

    ``stored`` and ``again`` hold one dict of equal-length columns per table (a History as JSON). Rows are
    ordered by their ``step_column``; at the same step, the tables' order in ``tables`` breaks the tie (the
    episodes of a rollout end before the update that learns from them, which comes before its evaluation).

    Why it matters: a run re-made on another machine first differs in the last bits of a float (a loss
    after the first update), and only later in discrete things (an episode ending a step earlier). A number
    edited in a stored file, or code that changed what it computes, differs by more than rounding at the
    very first row that differs. So ``onset.rounding`` tells an honest divergence from one to distrust. (On
    another machine the honest onset usually comes first, at the first update, so an edit further on is
    then judged by the spread alone.)
    """
    found: list[tuple[float, int, Onset]] = []
    for order, table in enumerate(tables):
        a, b = stored.get(table, {}), again.get(table, {})
        columns = sorted(set(a) | set(b))
        scales = {column: _column_scale(a.get(column, [])) for column in columns}
        length = max([len(a.get(c, [])) for c in columns] + [len(b.get(c, [])) for c in columns] + [0])
        for row in range(length):
            differing = []
            for column in columns:
                x = a.get(column, [])[row] if row < len(a.get(column, [])) else "(absent)"
                y = b.get(column, [])[row] if row < len(b.get(column, [])) else "(absent)"
                if x is None and _is_number(y) and not math.isfinite(float(y)):
                    continue
                if not _same(x, y):
                    differing.append((column, x, y, _near(x, y, rtol, atol + rtol * scales[column])))
            if differing:
                steps = [v for v in (a.get(step_column, [None] * (row + 1))[row:row + 1]
                                     + b.get(step_column, [None] * (row + 1))[row:row + 1]) if _is_number(v)]
                env_step = float(min(steps)) if steps else math.inf
                near = sum(close for *_, close in differing)
                column, x, y, _ = next((item for item in differing if not item[3]), differing[0])
                found.append((env_step, order, Onset(table=table, row=row, env_step=env_step,
                                                     rounding=near > 0 and near >= len(differing) - near,
                                                     detail=f"{near} of {len(differing)} differing columns within "
                                                            f"tolerance; {column}: stored {x!r} vs re-run {y!r}")))
                break
    if not found:
        return None
    return min(found, key=lambda item: item[:2])[2]
