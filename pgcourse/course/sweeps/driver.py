"""``pg.sweep``: run every trial of a grid, write each as it finishes, resume, retry, verify.

The loop, in words: expand the grid into trials; skip those the results folder already holds; hand
the rest to a backend; as each trial ends, write its record (or, if it raised or its worker died,
run it once more before recording the failure); on Ctrl-C stop the workers and keep every finished
trial. ``verify`` re-runs a random sample of finished trials and compares their histories.
"""
from __future__ import annotations

import ast
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...rl.agreement import compare as agreement_of
from ...rl.agreement import divergence_onset, spread_check
from ...rl.algorithms import Components, Hooks
from ...rl.config import ConfigError, fill_absent_defaults, make_config
from ...rl.planted import plant
from .backends import Lost, available_cores, make_backend
from .results import SweepResults
from .spec import TrialSpec, action_kind_of, check_workers_can_make, expand
from .store import ResultsFolder, SweepResultsError
from .trial import deterministic_part

_NOT_COMPARED = ("device", "progress")  # config fields a backend sets, not the experiment
_ABSENT = object()  # a field a saved config does not have


def _expected_config(spec: TrialSpec) -> dict[str, Any]:
    config = make_config(spec.algo, spec.env_id, action_kind_of(spec.env_id, spec.overrides.get("env_kwargs")),
                         seed=spec.seed, **dict(spec.overrides))
    config, _, _ = plant(config, Components(), Hooks())
    return {k: v for k, v in config.to_dict().items() if k not in _NOT_COMPARED}


def comparable_config(saved: Mapping[str, Any], today: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's saved config made comparable with ``today``'s: the fields a backend sets are left out, and a
    field added to pgcourse after the trial was recorded (absent from ``saved``) counts as equal when today's
    value is that field's default (the value the old trial ran with), and stays absent, so it differs, if not."""
    return {k: v for k, v in fill_absent_defaults(saved, today).items() if k not in _NOT_COMPARED}


def comparable_history(saved: Mapping[str, Any], rerun: Mapping[str, Any]) -> dict[str, Any]:
    """The re-run's deterministic history with only the columns the saved record has: a column pgcourse
    started logging after the trial was recorded (e.g. PPO's ``update_kl``) cannot be compared, and every
    column the record does hold must still be identical. (A column deleted from a record by hand is
    caught by the record's digest, checked when it is read.)"""
    rerun = deterministic_part(dict(rerun))
    for table in ("episodes", "updates", "evals"):
        columns = saved[table].keys()
        rerun[table] = {name: values for name, values in rerun[table].items() if name in columns}
    return rerun


def _check_same_experiment(folder: ResultsFolder, specs: Sequence[TrialSpec], finished: set[str]) -> None:
    """A finished trial is reused only if today's package would run it with the same config."""
    for spec in specs:
        if spec.trial_id not in finished:
            continue
        record = folder.read(spec.trial_id)
        expected = _expected_config(spec)
        saved = comparable_config(record.config, expected)
        changed = sorted(k for k in set(saved) | set(expected) if saved.get(k, _ABSENT) != expected.get(k, _ABSENT))
        if changed:
            name = changed[0]
            ran = f"{name}={saved[name]!r}" if name in saved else f"no {name} setting (recorded before it existed)"
            raise SweepResultsError(
                f"{folder.path}: finished trial {spec.trial_id} ran with {ran}, but this "
                f"pgcourse would run it with {name}={expected.get(name)!r} (defaults changed?); resuming would mix "
                "two experiments: use a new results folder")


class _Progress:
    """A tqdm bar: trials done of those to run, with running and failed counts beside it."""

    def __init__(self, total: int, enabled: bool, description: str):
        self.bar = None
        if enabled and total:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=description, unit="trial", dynamic_ncols=True)

    def show(self, done: int, running: int, failed: int) -> None:
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix(running=running, failed=failed, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_specs(specs: Sequence[TrialSpec], folder: ResultsFolder | None, backend, retries: int = 1,
              progress: bool = True, on_record=None) -> dict[str, Any]:
    """Run ``specs`` on ``backend``; write each record to ``folder`` (if given) as it arrives.

    Returns counts and the records in the order they finished: ``{"records": [...], "failed": n,
    "interrupted": bool}``. A trial whose record says ``"failed"`` or whose worker was lost is run again
    up to ``retries`` more times; then its failed record is written (a lost one is recorded as lost).

    A local pool that loses one worker loses every trial in flight with it, and cannot say whose worker
    died: such a loss (``Lost.shared``) is not counted against any of them; each runs again on its own
    (nothing beside it), where a second loss is its own. So one trial that kills its worker (out of memory,
    say) never uses up the retries of the trials that happened to run beside it.
    """
    queue = deque(specs)
    attempts: dict[str, int] = {}  # runs submitted, as written in each record (one lost with a broken pool
    #                                 may not have started yet)
    charged: dict[str, int] = {}  # runs that count against ``retries``
    suspects: set[str] = set()  # lost with others in flight: runs alone next time
    alone = False  # a suspect is running: nothing is submitted beside it
    records: list[dict[str, Any]] = []
    failed = 0
    bar = _Progress(len(specs), progress, "sweep")
    interrupted = False
    try:
        while queue or backend.in_flight:
            while queue and backend.in_flight < backend.capacity and not alone:
                if queue[0].trial_id in suspects and backend.in_flight:
                    break  # it waits until the trials in flight are done
                spec = queue.popleft()
                attempts[spec.trial_id] = attempts.get(spec.trial_id, 0) + 1
                charged[spec.trial_id] = charged.get(spec.trial_id, 0) + 1
                alone = spec.trial_id in suspects
                backend.submit(spec)
            bar.show(len(records), min(backend.in_flight, backend.capacity), failed)
            spec, outcome = backend.next_result()
            if spec.trial_id in suspects:
                suspects.discard(spec.trial_id)
                alone = False
            if isinstance(outcome, Lost):
                if outcome.shared:  # perhaps another trial's fault: not counted, run again on its own
                    charged[spec.trial_id] -= 1
                    suspects.add(spec.trial_id)
                    queue.appendleft(spec)
                    continue
                outcome = {**spec.to_dict(), "format": "pgcourse-trial", "version": 1, "trial_id": spec.trial_id,
                           "arm": spec.arm, "status": "failed", "error": f"lost: {outcome.reason}"}
            outcome["attempts"] = attempts[spec.trial_id]
            outcome["backend"] = getattr(backend, "name", type(backend).__name__)
            if outcome["status"] != "ok" and charged[spec.trial_id] <= retries:
                queue.appendleft(spec)  # once more, before anything else
                continue
            failed += outcome["status"] != "ok"
            if folder is not None:
                folder.write(outcome)
            records.append(outcome)
            if on_record is not None:
                on_record(outcome)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        backend.close(interrupted=interrupted)
        bar.show(len(records), 0, failed)
        bar.close()
    return {"records": records, "failed": failed, "interrupted": interrupted}


MAIN_GUARD_ADVICE = ("pg.sweep starts worker processes, and each one imports your script again (Python's "
                     "'spawn'/'forkserver' start), so a pg.sweep at the top level of a script runs again in every worker. "
                     "Put it under  if __name__ == \"__main__\":  (notebooks need nothing)")


def _under_main_guard(tree: ast.AST, line: int) -> bool:
    """Whether source line ``line`` lies inside an ``if __name__ == "__main__":`` block of module ``tree``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
            continue
        names = [part for part in (node.test.left, *node.test.comparators)]
        if (any(isinstance(part, ast.Name) and part.id == "__name__" for part in names)
                and any(isinstance(part, ast.Constant) and part.value == "__main__" for part in names)
                and any(child.lineno <= line <= (child.end_lineno or child.lineno) for child in node.body)):
            return True
    return False


def check_called_under_main_guard() -> None:
    """Refuse, before any worker starts, a ``pg.sweep`` written at the top level of a script (each worker would
    import the script and run the sweep again: screens of multiprocessing tracebacks, "worker process died"):
    the script's top-level statement that led to this call, directly or through its functions, must lie inside
    ``if __name__ == "__main__":``. Calls from a notebook, the REPL or ``python -c`` pass, as does a script that
    cannot be read."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not str(path).endswith(".py"):
        return  # a notebook, the REPL, python -c: workers do not re-import a main module
    frame = sys._getframe(1)  # the script's top-level statement that led here (perhaps through its functions)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return  # not reached from the script's top level (a thread, a callback): nothing to check
    try:
        tree = ast.parse(Path(path).read_text(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return
    if not _under_main_guard(tree, frame.f_lineno):
        raise ConfigError(f"{path}, line {frame.f_lineno}: {MAIN_GUARD_ADVICE}")


def sweep(algo: str | Sequence[str] | None, env_id: str | Sequence[str] | None, seeds: int | Iterable[int] = 10,
          grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None = None, *,
          folder: str | Path | None = None, backend: str = "local", workers: int | None = None,
          address: str | None = None, num_gpus: float = 0.0, device: str = "cpu", retries: int = 1,
          progress: bool = True, compress: bool = False, total_steps: int | None = None,
          **overrides: Any) -> SweepResults:
    """Train every (arm, seed) of a grid and return the results; with ``folder``, resumable.

    Example::

        results = pg.sweep("ppo", "CartPole-v1", seeds=range(10), grid={"clip_eps": [0.1, 0.2, 100.0]},
                           folder="sweeps/clip", total_steps=50_000)
        results.summary()          # IQM and mean of the final returns per arm, with 95% intervals

    Args:
        algo, env_id: one or a list (every combination is run); an arm may also name its own.
        seeds: a count (``10`` = seeds 0..9) or the seeds themselves.
        grid: ``{field: [values]}`` (the Cartesian product) or a list of arm dicts, each a set of config
            overrides with an optional ``"label"`` (and ``"algo"``/``"env_id"``), e.g.
            ``[{"label": "buggy", "traps": ["long_rollout"]}, {"label": "fixed"}]``.
        folder: results folder. Each finished trial is written there at once (``trials/<id>.json``);
            calling again with the same folder skips finished trials (resume, or extend the grid).
            None: nothing is written (results only in memory).
        backend: ``"local"`` (``workers`` processes, default one per core), ``"batch"`` (the same processes,
            each arm's seeds trained as one ``pg.train_many`` batch where it can: A2C and PPO without traps; see
            :class:`pgcourse.course.sweeps.backends.BatchBackend`) or ``"ray"`` (see
            :class:`pgcourse.course.sweeps.backends.RayBackend`: ``address``, ``num_gpus``).
        retries: times a trial that raised, or whose worker died, is run again before it is recorded
            as failed (failed trials are run again when the sweep is resumed).
        progress: a bar with trials done, running and failed.
        compress: write ``.json.gz`` trial files.
        total_steps, **overrides: settings every arm shares (any config field).

    Returns:
        :class:`~pgcourse.course.sweeps.results.SweepResults` of every requested trial that finished (including
        those found in ``folder``); ``.interrupted`` is True after Ctrl-C, ``.failed`` lists failures.
    """
    if backend in ("local", "batch"):  # Ray's workers do not import the main script
        check_called_under_main_guard()
    if total_steps is not None:
        overrides["total_steps"] = total_steps
    specs = expand(algo, env_id, seeds, grid, overrides)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"retries={retries!r} is invalid: expected an integer >= 0")
    check_workers_can_make(spec.env_id for spec in specs)  # trials run in fresh processes (both backends)
    store = ResultsFolder(folder, compress) if folder is not None else None
    todo = specs
    if store is not None:
        store.check_writable()
        finished = store.finished_ids() if store.is_sweep() else set()
        _check_same_experiment(store, specs, finished)
        store.check_request(specs)
        todo = [spec for spec in specs if spec.trial_id not in finished]
    runner = make_backend(backend, workers, address, num_gpus, device)  # bad settings: nothing is written
    if store is not None:
        try:
            store.record_request(specs)
        except BaseException:
            runner.close()
            raise
    started = time.perf_counter()
    outcome = run_specs(todo, store, runner, retries, progress)
    seconds = time.perf_counter() - started
    if store is not None:
        results = SweepResults.from_folder(store.path, specs)
    else:
        results = SweepResults.from_records(outcome["records"], specs)
    results.interrupted = outcome["interrupted"]
    results.seconds = seconds
    results.skipped = len(specs) - len(todo)
    if progress or outcome["interrupted"]:
        where = f" in {store.path}" if store is not None else ""
        state = "interrupted: " if outcome["interrupted"] else ""
        print(f"sweep {state}{len(outcome['records'])} of {len(todo)} trials ran in {seconds:.0f} s"
              f"{f' ({results.skipped} already finished)' if results.skipped else ''}, {outcome['failed']} failed"
              f"{where}" + (" — run it again with the same folder to resume" if outcome["interrupted"] and store else ""),
              flush=True)
    return results


def load_results(folder: str | Path) -> SweepResults:
    """The finished trials of a results folder (every trial it was asked for)."""
    store = ResultsFolder(folder)
    return SweepResults.from_folder(store.path, store.requested())


@dataclass
class VerifyReport:
    """What ``verify`` re-ran, and how each re-run agreed with its saved trial.

    ``levels`` maps each checked trial to the strongest agreement found: ``"bit for bit"``, ``"within
    tolerance"`` (every number within ``rtol``) or ``"inside the spread"`` (the runs parted over a rounding
    difference and the re-run's mean episode return lies inside the arm's other seeds' widened range; see
    :mod:`pgcourse.rl.agreement`). ``mismatches`` holds the trials that agree at none of these (a changed
    config, a first difference larger than rounding, a result outside the spread); with ``exact=True``
    anything short of bit for bit is a mismatch. ``unjudged`` holds the trials that parted over a rounding
    difference where their arm has fewer than 2 other seeds: with no spread to compare the outcome with, this
    machine can say neither that they agree nor that they differ (a single-seed arm re-run on another CPU; on
    the machine that made the folder they re-run bit for bit). ``ok`` needs at least one trial that agreed, and
    none that differed or failed.
    """

    folder: Path
    sample_seed: int
    exact: bool = False
    checked: list[str] = field(default_factory=list)
    levels: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    mismatches: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unjudged: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.levels) and not self.mismatches and not self.failed

    @property
    def identical(self) -> bool:
        """Every checked trial re-ran bit for bit (a fact about this machine, not about the code)."""
        return self.ok and all(level == "bit for bit" for level in self.levels.values())

    def __str__(self) -> str:
        if self.ok:
            counts = {level: sum(value == level for value in self.levels.values()) for level in VERIFY_LEVELS}
            verdict = ("all agree: " if not self.unjudged else "the judged agree: ") + ", ".join(
                f"{n} {level}" for level, n in counts.items() if n)
        elif not self.levels and not self.mismatches and not self.failed and self.unjudged:
            verdict = "none could be judged here"
        else:
            verdict = f"{len(self.mismatches)} differ, {len(self.failed)} failed"
        if self.unjudged:
            verdict += f", {len(self.unjudged)} unjudged"
        lines = [f"verified {len(self.checked)} trial(s) of {self.folder} (sample seed {self.sample_seed}"
                 f"{', exact' if self.exact else ''}): {verdict}"]
        lines += [f"  {self.levels[trial]}: {trial}" + (f" — {self.details[trial]}" if trial in self.details else "")
                  for trial in self.checked if trial in self.levels]
        if any(level != "bit for bit" for level in self.levels.values()):
            lines.append("  (bit for bit holds only on a machine that rounds as the one that made the folder; "
                         "elsewhere a correct re-run agrees within tolerance or inside the spread)")
        lines += [f"  DIFFERENT {trial}: {why}" for trial, why in self.mismatches.items()]
        lines += [f"  FAILED {trial}: {why}" for trial, why in self.failed.items()]
        lines += [f"  UNJUDGED {trial}: {why}" for trial, why in self.unjudged.items()]
        if self.unjudged:
            lines.append("  (an unjudged trial parted from its record over a rounding difference, as on another CPU, "
                         "and its arm has too few other seeds to say whether the outcome agrees; min_arm_seeds=3 "
                         "draws only trials any machine can judge; the CLI's --min-arm-seeds 3)")
        return "\n".join(lines)


VERIFY_LEVELS = ("bit for bit", "within tolerance", "inside the spread")
UNJUDGED = "unjudged"  # compare_rerun's level for a re-run parted over rounding with no spread to judge it by
VERIFY_RTOL = 1e-4  # float32 training rounds at ~1e-7 an operation; 1e-4 leaves room for thousands of them


def first_difference(saved: Any, rerun: Any, where: str = "") -> str | None:
    """Where two JSON values first differ (``"updates.entropy[12]: 0.61 vs 0.62"``), None if equal."""
    if isinstance(saved, dict) and isinstance(rerun, dict):
        for key in sorted(set(saved) | set(rerun)):
            found = first_difference(saved.get(key), rerun.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(saved, list) and isinstance(rerun, list):
        if len(saved) != len(rerun):
            return f"{where}: {len(saved)} entries saved vs {len(rerun)} re-run"
        for index, (a, b) in enumerate(zip(saved, rerun)):
            found = first_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    return None if saved == rerun else f"{where}: saved {saved!r} vs re-run {rerun!r}"


def _mean_return(history: Mapping[str, Any]) -> float:
    """A run's summary for the spread check: its mean training-episode return (the learning curve's area)."""
    returns = np.asarray([np.nan if v is None else v for v in history["episodes"]["return"]], dtype=np.float64)
    return float(np.nanmean(returns)) if np.isfinite(returns).any() else float("nan")


def compare_rerun(saved: Mapping[str, Any], rerun_history: Mapping[str, Any], arm_histories: Sequence[Mapping[str, Any]],
                  exact: bool = False, rtol: float = VERIFY_RTOL) -> tuple[str | None, str]:
    """How a re-run's history agrees with its saved trial: ``(level, detail)``, level None if it does not.

    ``saved`` is the trial's deterministic history, ``rerun_history`` the re-run's (same columns), and
    ``arm_histories`` the other seeds of the same arm (for the spread). See :class:`VerifyReport`. Level
    :data:`UNJUDGED`: the runs parted over a rounding difference and there are fewer than 2 other seeds, so
    nothing can say whether the outcome agrees (not a difference: an edit still shows as larger than rounding).
    """
    agreement = agreement_of(saved, rerun_history, rtol=rtol)
    if agreement.identical:
        return "bit for bit", ""
    where = f"first difference {agreement.first_difference}"
    if exact:
        return None, f"not bit for bit ({where}; exact was asked for)"
    if agreement.close:
        return "within tolerance", f"{where}; every number within rtol {rtol:g}"
    if saved.get("status") != rerun_history.get("status"):
        return None, f"status: saved {saved.get('status')!r} vs re-run {rerun_history.get('status')!r}"
    onset = divergence_onset(saved, rerun_history, rtol=rtol)
    if onset is None or not onset.rounding:
        return None, str(onset) if onset else where
    others = [_mean_return(history) for history in arm_histories]
    if sum(np.isfinite(others)) < 2:
        return UNJUDGED, f"{onset}; the arm has fewer than 2 other seeds to compare the outcome with"
    check = spread_check(_mean_return(rerun_history), others)
    if not check.inside:
        return None, f"{onset}; mean episode return {check}"
    return "inside the spread", f"{onset}; mean episode return {check}"


def verify(folder: str | Path, sample: int = 3, seed: int | None = None, workers: int | None = None,
           progress: bool = False, max_seconds: float | None = None, exact: bool = False,
           min_arm_seeds: int = 1) -> VerifyReport:
    """Re-run ``sample`` randomly chosen finished trials of ``folder`` and compare them with the saved ones.

    The config must be the same. The history (every column except wall times) agrees at one of three
    levels, and the report says which (:class:`VerifyReport`): bit for bit (the same seed on a machine
    that rounds as the one that made the folder), within a tolerance, or — another CPU, thread count or
    torch makes the runs part over a rounding difference — inside the spread of the arm's other seeds.
    ``exact=True`` accepts bit for bit only (check a folder on the machine that made it).
    ``seed`` picks the sample (None: a fresh random choice, printed in the report so it can be repeated).
    ``max_seconds`` draws only among trials that took at most that long (a CI check with a time budget).
    ``min_arm_seeds`` draws only among trials whose arm has at least that many finished seeds: 3 leaves each
    drawn trial 2 others to judge it by on any machine (a single-seed arm can be judged only where it re-runs
    within tolerance; elsewhere it is reported unjudged).
    A trial made in a batch (``backend="batch"``) is re-run in that batch (its seeds in their order), on this
    machine bit for bit as when it was made; the batch's other seeds are trained but not compared.
    """
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
        raise ValueError(f"sample={sample!r} is invalid: expected a positive integer")
    if not isinstance(min_arm_seeds, int) or isinstance(min_arm_seeds, bool) or min_arm_seeds < 1:
        raise ValueError(f"min_arm_seeds={min_arm_seeds!r} is invalid: expected a positive integer (3 lets any "
                         "machine judge every drawn trial)")
    store = ResultsFolder(folder)
    store.read_manifest()
    finished = sorted(store.finished_ids())
    if max_seconds is not None:
        finished = [trial_id for trial_id in finished if store.read(trial_id, check=False).wall_seconds <= max_seconds]
    if min_arm_seeds > 1:
        arms = {trial_id: store.read(trial_id, check=False).arm for trial_id in store.finished_ids()}
        seeds_per_arm = Counter(arms.values())
        finished = [trial_id for trial_id in finished if seeds_per_arm[arms[trial_id]] >= min_arm_seeds]
    if not finished:
        raise SweepResultsError(f"{store.path} has no finished trial to verify"
                                + (f" that took at most {max_seconds:g} s" if max_seconds is not None else "")
                                + (f" whose arm has at least {min_arm_seeds} finished seeds" if min_arm_seeds > 1
                                   else ""))
    sample_seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    chosen = sorted(random.Random(sample_seed).sample(finished, min(sample, len(finished))))
    saved = {trial_id: store.read(trial_id) for trial_id in chosen}  # also checks each file's digest
    report = VerifyReport(store.path, sample_seed, exact=exact)

    every_record: list = []

    def arm_histories(trial_id: str) -> list[dict[str, Any]]:
        """The other seeds of the trial's arm (digests checked: they set the range a re-run must fall in)."""
        if not every_record:
            every_record.extend(record for record in store.records(check=True) if record.ok)
        return [record.data["history"] for record in every_record
                if record.trial_id != trial_id and record.arm == saved[trial_id].arm]

    def compare(record: dict[str, Any]) -> None:
        trial_id = record["trial_id"]
        report.checked.append(trial_id)
        if record["status"] != "ok":
            report.failed[trial_id] = record.get("error", "failed")
            return
        old = saved[trial_id].data
        difference = first_difference(
            {"config": comparable_config(old["config"], record["config"])},
            {"config": {k: v for k, v in record["config"].items() if k not in _NOT_COMPARED}})
        if difference:
            report.mismatches[trial_id] = difference
            return
        old_history = deterministic_part(old["history"])
        level, detail = compare_rerun(old_history, comparable_history(old_history, record["history"]),
                                      [] if exact else arm_histories(trial_id), exact=exact)
        if level is None:
            report.mismatches[trial_id] = f"history: {detail}"
        elif level == UNJUDGED:
            report.unjudged[trial_id] = f"history: {detail}"
        else:
            report.levels[trial_id] = level
            if detail:
                report.details[trial_id] = detail

    def compare_chosen(record: dict[str, Any]) -> None:
        if record["trial_id"] in saved:  # a batch re-runs its other seeds too; only the drawn ones are compared
            compare(record)

    # a trial made alone re-runs alone; one made in a batch (backend="batch") re-runs in that batch, its seeds in
    # their order, since its rounding depends on the batch
    alone = [saved[trial_id].spec for trial_id in chosen if not saved[trial_id].data.get("batch")]
    batches: dict[tuple, list[TrialSpec]] = {}
    for trial_id in chosen:
        batch = saved[trial_id].data.get("batch")
        if batch:
            spec = saved[trial_id].spec
            batches.setdefault((spec.arm, tuple(batch["seeds"])), [
                TrialSpec(spec.algo, spec.env_id, int(seed), spec.overrides, spec.label) for seed in batch["seeds"]])
    check_workers_can_make(spec.env_id for spec in [*alone, *(s for specs in batches.values() for s in specs)])
    runs = [(alone, make_backend("local", workers or min(len(alone), available_cores())))] if alone else []
    runs += [(specs, make_backend("batch", 1)) for specs in batches.values()]
    for specs, backend in runs:
        outcome = run_specs(specs, None, backend, retries=0, progress=progress, on_record=compare_chosen)
        if outcome["interrupted"]:
            raise KeyboardInterrupt
    return report
