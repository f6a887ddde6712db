"""Many seeds on many cores: ``pg.sweep`` runs a grid of arms x seeds on this machine (a process pool)
or on a Ray cluster, writes each finished trial to a results folder, resumes, retries and verifies.

    spec.py      the grid -> TrialSpec (plain data; the trial id is a hash of its content)
    trial.py     one trial in a worker: train, return a JSON record (history, config, versions, wall time)
    store.py     the results folder: sweep.json + trials/<id>.json, written atomically, digest-checked
    backends.py  "local" (process pool) and "ray" (Ray tasks, num_cpus=1 each)
    driver.py    sweep(), run_specs() (write as trials finish, retry once, Ctrl-C keeps what finished),
                 load_results(), verify()
    results.py   SweepResults: trials by arm, one score per seed, learning curves, summary() with intervals
    plots.py     plot_sweep(): curves with bootstrap bands + interval estimates (pgcourse plot FOLDER)
"""
from __future__ import annotations

from .backends import LocalBackend, RayBackend, available_cores
from .driver import VerifyReport, load_results, sweep, verify
from .results import SweepResults
from .spec import TrialSpec, expand
from .store import ResultsFolder, SweepResultsError, TrialRecord
from .trial import run_trial



def plot_sweep(*args, **kwargs):
    """See :func:`pgcourse.course.sweeps.plots.plot_sweep` (imported on use: workers need no matplotlib)."""
    from .plots import plot_sweep as _plot_sweep
    return _plot_sweep(*args, **kwargs)


__all__ = ["sweep", "load_results", "verify", "SweepResults", "TrialSpec", "TrialRecord", "ResultsFolder",
           "SweepResultsError", "VerifyReport", "LocalBackend", "RayBackend", "available_cores", "expand",
           "run_trial", "plot_sweep"]
