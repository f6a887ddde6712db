"""The sweeps package (``course/sweeps``), pinned at every edge of its ordering comparisons (issue 45, item 5).

A mechanical sweep flipped every ordering comparison of the package at its boundary (``<`` <-> ``<=``, ``>`` <->
``>=``); in ``course/sweeps`` the flips below survived the unit tests, or no unit test ran the line. Each test states
what the comparison means (is a value exactly at the threshold accepted or refused, counted or not?) and checks it at
the edge, one below and one above; every expected value is worked out by hand. Backends are driven with hand-made
futures and pools (no process starts), Ray's helpers with a fake ``ray``, ``os`` and clock.

One flip is not tested, since no input can tell it apart: ``verify``'s ``min_arm_seeds > 1`` (at 1 the flipped
branch keeps every finished trial: each one's arm has at least its own finished seed).
"""
from __future__ import annotations

import ast
import os
import signal
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from types import SimpleNamespace

import pytest

from pgcourse.course.sweeps import backends, driver, plots
from pgcourse.course.sweeps.backends import BatchBackend, LocalBackend, Lost, make_backend
from pgcourse.course.sweeps.driver import UNJUDGED, _under_main_guard, compare_rerun
from pgcourse.course.sweeps.results import SweepResults
from pgcourse.course.sweeps.spec import MAX_SEED, TrialSpec, _seeds
from pgcourse.rl.config import ConfigError

SPECS = [TrialSpec("ppo", "CartPole-v1", seed, {}, "default") for seed in range(3)]
DIED = "worker process died (a worker died)"
SHARED = "; {} trials were lost with that pool, whichever killed it"


def _broken() -> Future:
    future = Future()
    future.set_exception(BrokenProcessPool("a worker died"))
    return future


# -- LocalBackend / BatchBackend: a broken pool's loss is shared only when it took more than one trial -------------
@pytest.mark.parametrize("in_pool, in_other_pool, shared", [
    (1, 0, False),  # the only trial in flight in its pool: its own worker died, its own loss
    (1, 1, False),  # a trial of another (newer) pool is not lost with it
    (2, 0, True),  # exactly two lost together: either may have killed the pool
    (3, 0, True),
])
def test_a_local_pool_loss_is_shared_from_two_trials_lost_together(in_pool, in_other_pool, shared):
    """``LocalBackend.next_result``: a trial lost with a broken pool is ``shared`` (and its reason says how many were
    lost, "whichever killed it") when the pool lost more than one trial, 2 included; one trial alone is its own loss,
    with the plain reason."""
    backend = LocalBackend(workers=1)
    pool, newer = object(), object()  # neither is backend._pool (None): nothing to shut down
    for spec in SPECS[:in_pool]:
        backend._futures[_broken()] = (spec, pool)
    for _ in range(in_other_pool):
        backend._futures[Future()] = (TrialSpec("ppo", "CartPole-v1", 99, {}, "other"), newer)  # still running
    reason = DIED + (SHARED.format(in_pool) if shared else "")
    outcomes = [backend.next_result() for _ in range(in_pool)]
    assert sorted(spec.seed for spec, _ in outcomes) == list(range(in_pool))
    assert [outcome for _, outcome in outcomes] == [Lost(reason, shared=shared)] * in_pool
    assert backend._casualties == {}


@pytest.mark.parametrize("batch_sizes, shared", [
    ((1,), False),  # one trial in the one broken batch: its own loss
    ((2,), True),  # a batch of exactly two: both shared
    ((1, 1), True),  # two batches of one in the same pool: two lost together
    ((3,), True),
])
def test_a_batch_pool_loss_is_shared_from_two_trials_lost_together(batch_sizes, shared):
    """``BatchBackend.next_result``: the trials lost with a broken pool are its broken batch's and those of the
    batches still running in that pool; they are ``shared`` (reason: how many, "whichever killed it") when that is
    more than one trial, 2 included, and a batch of one alone in its pool is its own loss."""
    backend = BatchBackend(workers=1)
    pool = object()
    first, *running = batch_sizes
    backend._batches[_broken()] = (SPECS[:first], pool)
    for size in running:
        backend._batches[Future()] = ([TrialSpec("ppo", "CartPole-v1", s, {}, "other") for s in range(size)], pool)
    backend._batches[Future()] = ([TrialSpec("ppo", "CartPole-v1", 7, {}, "elsewhere")], object())  # another pool
    lost = sum(batch_sizes)
    reason = DIED + (SHARED.format(lost) if shared else "")
    outcomes = [backend.next_result() for _ in range(first)]
    assert [spec for spec, _ in outcomes] == SPECS[:first]
    assert [outcome for _, outcome in outcomes] == [Lost(reason, shared=shared)] * first


# -- Ray's helpers: the reaping deadline, the error logs' age, num_gpus ----------------------------------------------
@pytest.mark.parametrize("now, waits", [
    (109.95, 1),  # just before the deadline: one more look at the child
    (110.0, 0),  # exactly 10 s after the kill: the wait is over
    (110.05, 0),
])
def test_killed_ray_processes_are_reaped_for_less_than_ten_seconds(monkeypatch, now, waits):
    """``_kill``: after SIGKILL each child is reaped (waitpid) while the clock is before kill time + 10 s; a clock
    exactly at the deadline looks no more. (A fake ``os`` and clock: nothing is killed; the clock reads 100 at the
    kill, ``now`` at the first look, 1000 after that.)"""
    readings = iter([100.0, now])
    killed, waited = [], []
    monkeypatch.setattr(backends, "time", SimpleNamespace(monotonic=lambda: next(readings, 1000.0),
                                                          sleep=lambda seconds: None))
    monkeypatch.setattr(backends, "os", SimpleNamespace(
        kill=lambda pid, sig: killed.append((pid, sig)), WNOHANG=os.WNOHANG,
        waitpid=lambda pid, options: waited.append(pid) or (0, 0)))  # (0, 0): still running
    backends._kill({424242})
    assert killed == [(424242, signal.SIGKILL)]
    assert waited == [424242] * waits


MTIME = 1_700_000_000  # an mtime that is an exact float


@pytest.mark.parametrize("since, shown", [
    (MTIME - 1, True),
    (MTIME, True),  # written exactly at the start of the try: this try's log
    (MTIME + 1, False),  # written before it: an earlier session's
])
def test_rays_error_logs_are_those_written_from_the_start_of_the_try_on(tmp_path, since, shown):
    """``_error_logs``: an ``.err`` log of the latest session is shown when it was modified at or after ``since``
    (equality included), as ``name: first line | second line`` (path and traceback lines left out)."""
    logs = tmp_path / "session_latest" / "logs"
    logs.mkdir(parents=True)
    err = logs / "raylet.err"
    err.write_text("  File \"x.py\", line 1\nraylet aborted\n\n/tmp/ray/x: a path\ndashboard agent not started\nmore\n")
    (logs / "raylet.out").write_text("not an error log\n")
    for path in (err, logs / "raylet.out"):
        os.utime(path, ns=(MTIME * 10**9, MTIME * 10**9))
    utils = SimpleNamespace(get_default_ray_temp_dir=lambda: str(tmp_path))
    ray = SimpleNamespace(_common=SimpleNamespace(utils=utils))
    expected = ["raylet.err: raylet aborted | dashboard agent not started"] if shown else []
    assert backends._error_logs(ray, float(since)) == expected


@pytest.mark.parametrize("num_gpus, device", [
    (-1, None),
    (-0.5, None),  # just below 0: refused
    (0, "cpu"),  # exactly 0: no GPU, trials on the CPU
    (0.0, "cpu"),
    (0.5, "cuda"),  # a share of a GPU: trials on it
])
def test_ray_accepts_num_gpus_from_zero_on(monkeypatch, num_gpus, device):
    """``make_backend("ray", num_gpus=...)``: num_gpus >= 0 is accepted (0 included: CPU trials), below 0 refused;
    a positive num_gpus with the default device trains on "cuda"."""
    made = []

    class StandIn:  # a class, as make_backend checks isinstance(backend, RayBackend) first
        def __init__(self, *args):
            made.append(args)

    monkeypatch.setattr(backends, "RayBackend", StandIn)
    if device is None:
        with pytest.raises(ValueError, match=r"num_gpus=-.* is invalid: expected a number >= 0"):
            make_backend("ray", num_gpus=num_gpus)
        assert made == []
    else:
        assert isinstance(make_backend("ray", num_gpus=num_gpus), StandIn)
        assert made == [(None, None, num_gpus, device)]


# -- driver: the main guard's lines, retries, the spread's two seeds -----------------------------------------------
GUARDED = """import pgcourse as pg
if __name__ == "__main__":
    pg.sweep(
        "ppo",
        "CartPole-v1",
    )
print("done")
"""


@pytest.mark.parametrize("line, inside", [
    (1, False),
    (2, False),  # the if line itself is not in its block
    (3, True),  # the first line of the block's statement
    (4, True),
    (5, True),
    (6, True),  # its last line (the closing parenthesis)
    (7, False),  # the line after the block
])
def test_a_line_is_under_the_main_guard_from_the_first_to_the_last_line_of_a_statement_in_its_block(line, inside):
    """``_under_main_guard``: a line is inside ``if __name__ == "__main__":`` when it lies within a statement of
    the block, from that statement's first line to its last line, both included."""
    assert _under_main_guard(ast.parse(GUARDED), line) is inside


def test_a_one_line_statement_under_the_main_guard_is_inside_it():
    """A statement on one line (first line = last line) is inside the guard; the lines around it are not."""
    tree = ast.parse('x = 1\nif "__main__" == __name__:\n    main()\ny = 2\n')
    assert [_under_main_guard(tree, line) for line in (1, 2, 3, 4)] == [False, False, True, False]


@pytest.mark.parametrize("retries, accepted", [(-1, False), (0, True), (1, True)])
def test_a_sweep_accepts_retries_from_zero_on(monkeypatch, retries, accepted):
    """``sweep``: retries is an integer >= 0 (0 included: each trial runs once, a failure is recorded at once);
    -1 is refused before anything runs. (The backend and the run are stand-ins that record what they get.)"""
    ran = []
    monkeypatch.setattr(driver, "check_workers_can_make", lambda env_ids: None)
    monkeypatch.setattr(driver, "make_backend", lambda *args: SimpleNamespace(name="stand-in"))
    monkeypatch.setattr(driver, "run_specs", lambda specs, store, runner, retries, progress: ran.append(retries) or {
        "records": [], "failed": 0, "interrupted": False})
    if accepted:
        driver.sweep("ppo", "CartPole-v1", seeds=1, backend="ray", retries=retries, progress=False)
        assert ran == [retries]
    else:
        with pytest.raises(ConfigError, match=r"retries=-1 is invalid: expected an integer >= 0"):
            driver.sweep("ppo", "CartPole-v1", seeds=1, backend="ray", retries=retries, progress=False)
        assert ran == []


SAVED = {"status": "ok", "episodes": {"return": [10.0, 20.0], "env_step": [10, 20]},
         "updates": {"env_step": [10, 20], "loss": [1.0, 100.0]}, "evals": {}}
# the re-run parts at the first update by 5e-4: beyond rtol 1e-4 of 1.0, within 1e-4 of the column's scale (100)
RERUN = {**SAVED, "updates": {"env_step": [10, 20], "loss": [1.0 + 5e-4, 100.0]}}


def _seed(*returns):
    return {"episodes": {"return": list(returns), "env_step": [10] * len(returns)}}


@pytest.mark.parametrize("others, level", [
    ([], UNJUDGED),
    ([_seed(14.0)], UNJUDGED),  # one other seed: no spread
    ([_seed(14.0), _seed(None)], UNJUDGED),  # two, but one has no finite return: still one
    ([_seed(14.0), _seed(16.0)], "inside the spread"),  # exactly two finite: a spread [14 - 4, 16 + 4] holds 15
    ([_seed(14.0), _seed(16.0), _seed(None)], "inside the spread"),
    ([_seed(100.0), _seed(101.0)], None),  # two finite, 15 outside [100 - 2.5 * 2, 101 + 5]: a difference
    ([_seed(14.0), _seed(15.0), _seed(16.0)], "inside the spread"),
])
def test_a_rounding_divergence_is_judged_by_the_spread_from_two_other_finite_seeds(others, level):
    """``compare_rerun``: a re-run that parted over rounding is judged against the spread of its arm's other seeds
    when at least 2 of them (2 included) have a finite mean return; with fewer it is unjudged. The re-run's mean
    return is 15 (episodes 10 and 20)."""
    got, detail = compare_rerun(SAVED, RERUN, others)
    assert got == level, detail
    assert ("fewer than 2 other seeds" in detail) is (level == UNJUDGED)


# -- results and plots: an arm needs two finished seeds for a band or a steps-to-threshold estimate ----------------
def _results(seeds_per_arm: dict[str, int]) -> SweepResults:
    """Each seed's returns 0, 10, 10 at env steps 100, 200, 300."""
    specs, records = [], []
    for label, seeds in seeds_per_arm.items():
        for seed in range(seeds):
            spec = TrialSpec("ppo", "CartPole-v1", seed, {"clip_eps": 0.1 + 0.1 * len(specs)}, label)
            specs.append(spec)
            records.append({**spec.to_dict(), "trial_id": spec.trial_id, "arm": spec.arm, "status": "ok",
                            "history": {"episodes": {"return": [0.0, 10.0, 10.0], "env_step": [100.0, 200.0, 300.0]},
                                        "updates": {}, "evals": {}}})
    return SweepResults.from_records(records, specs)


def test_an_arm_gets_a_steps_to_threshold_estimate_from_two_finished_seeds():
    """``SweepResults.steps_to_threshold``: arms with fewer than 2 finished seeds are left out; 2 (included) or more
    get the median over seeds, here 200 (each seed's return first reaches 5 at env step 200), every seed reached."""
    found = _results({"one": 1, "two": 2, "three": 3}).steps_to_threshold(5.0, window=1)
    assert sorted(found) == ["ppo CartPole-v1 three", "ppo CartPole-v1 two"]
    assert (found["ppo CartPole-v1 two"].median.point, found["ppo CartPole-v1 two"].reached) == (200.0, 2)
    assert (found["ppo CartPole-v1 three"].median.point, found["ppo CartPole-v1 three"].reached) == (200.0, 3)


@pytest.mark.parametrize("seeds_per_arm, banded", [
    ({"one": 1}, []),
    ({"two": 2}, ["two"]),  # exactly two seeds: a band
    ({"one": 1, "two": 2, "three": 3}, ["two", "three"]),
])
def test_the_sweep_plot_draws_an_arms_curve_band_from_two_finished_seeds(monkeypatch, seeds_per_arm, banded):
    """``plot_sweep``: an arm's aggregate learning curve (with its bootstrap band) is drawn when the arm has at least
    2 finished seeds, 2 included; with no such arm the plot says so instead."""
    import matplotlib.pyplot as plt

    drawn = []
    monkeypatch.setattr(plots, "plot_aggregate_curves", lambda curves, **kwargs: drawn.append(list(curves)))
    figure = plots.plot_sweep(_results(seeds_per_arm), window=1, last=3, reps=10)
    try:
        assert drawn == ([banded] if banded else [])
        texts = [text.get_text() for ax in figure.axes for text in ax.texts]
        assert ("fewer than 2 finished seeds per arm: no band to draw" in texts) is (not banded)
    finally:
        plt.close(figure)


# -- spec: seeds in [0, MAX_SEED] -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, accepted", [
    ([-1], False),
    ([0], True),
    ([MAX_SEED - 1], True),
    ([MAX_SEED], True),  # exactly 2**32 - 1: the config's largest seed
    ([MAX_SEED + 1], False),
    ([0, MAX_SEED + 1], False),
])
def test_seeds_are_accepted_from_0_to_max_seed_both_included(seeds, accepted):
    """``_seeds`` (``pg.sweep``'s seeds=): each seed is an integer in [0, 2**32 - 1], both ends included."""
    assert MAX_SEED == 2**32 - 1
    if accepted:
        assert _seeds(seeds) == seeds
    else:
        with pytest.raises(ConfigError, match=r"integers in \[0, 4294967295\]"):
            _seeds(seeds)
