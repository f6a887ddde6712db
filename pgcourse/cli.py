"""The ``pgcourse`` command: train, evaluate, record a GIF, benchmark, build the exercises.

    pgcourse train ppo --env CartPole-v1 --seed 0 --steps 50000 --out runs/ppo-cartpole
    pgcourse train ppo --env LunarLander-v3 --env-arg continuous=true --out runs/ppo-lunar-continuous
    pgcourse eval runs/ppo-cartpole --episodes 20 --mode both
    pgcourse gif runs/ppo-cartpole --out ppo.gif
    pgcourse bench --quick
    pgcourse sweep ppo --env CartPole-v1 --seeds 10 --grid clip_eps=0.1,0.2,100 --out sweeps/clip
    pgcourse plot sweeps/clip --out clip.png
    pgcourse exercises --check

Bad input (an unknown setting, a value out of range, an unknown environment, a run folder that
already exists or cannot be read) ends with a one-line message on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .rl.config import ALGORITHMS, ConfigError

# Settings with their own option; `--set` must not pass them a second time.
_DEDICATED = {"seed": "--seed", "total_steps": "--steps", "device": "--device", "algo": "ALGO", "env_id": "--env"}


class UsageError(Exception):
    """Bad command-line input, reported in one line with exit code 2."""


# -- argument types --------------------------------------------------------------------------------
def _int_at_least(low: int, example: str = "50000 or 5e4"):
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            try:  # 1e5 or 100000.0: an integral float is that integer, as in pg.train(total_steps=1e5)
                number = float(text.replace("_", ""))
            except ValueError:
                number = float("nan")
            if not number.is_integer():
                raise argparse.ArgumentTypeError(f"expected an integer (such as {example}), got {text!r}") from None
            value = int(number)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def parse_setting(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``; the value is a Python literal when it reads as one
    (``1e-3``, ``(32, 32)``, ``False``, ``None``), otherwise the string itself."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UsageError(f"--set expects key=value (e.g. --set lr=1e-3), got {text!r}")
    if key in _DEDICATED:
        raise UsageError(f"--set {key}=...: use {_DEDICATED[key]} instead")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = raw
    return key, value


def parse_settings(items: Sequence[str] | None) -> dict[str, Any]:
    return dict(parse_setting(item) for item in items or [])


def parse_env_arg(text: str) -> tuple[str, Any]:
    """``"continuous=true"`` -> ``("continuous", True)``: the value is read as JSON (``true``, ``0.5``,
    ``[1, 2]``, ``"text"``), else as a Python literal (``True``, ``None``), else taken as the string itself."""
    import json

    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key.isidentifier():
        raise UsageError(f"--env-arg expects KEY=VALUE, a keyword argument of the environment (e.g. --env-arg "
                         f"continuous=true), got {text!r}")
    try:
        return key, json.loads(raw)
    except (ValueError, RecursionError):  # (a value nested deeper than the parser recurses is read as below)
        pass
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, raw


def parse_env_args(items: Sequence[str] | None) -> dict[str, Any] | None:
    """``--env-arg`` options as ``env_kwargs`` (None when there are none); a key given twice is an error."""
    if not items:
        return None
    pairs = [parse_env_arg(item) for item in items]
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UsageError(f"--env-arg {repeated[0]}=... is given twice; give each keyword argument once")
    return dict(pairs)


def _env_kwargs_option(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    """Put ``--env-arg`` into ``overrides["env_kwargs"]`` (refusing a second ``--set env_kwargs=...``)."""
    env_kwargs = parse_env_args(args.env_arg)
    if env_kwargs is None:
        return
    if "env_kwargs" in overrides:
        raise UsageError("give the environment's keyword arguments with --env-arg KEY=VALUE or with "
                         "--set env_kwargs={...}, not both")
    overrides["env_kwargs"] = env_kwargs


# -- subcommands -----------------------------------------------------------------------------------
def _check_env_id(env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
    from .rl.envs import env_spaces
    try:
        env_spaces(env_id, env_kwargs)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _check_out_free(out: Path, overwrite: bool) -> None:
    """The same rule as ``Run.save``, checked before training so no time is wasted."""
    from .rl.run import save_target_problem

    problem = save_target_problem(out, overwrite, "--overwrite")
    if problem is not None:
        raise UsageError(problem)


def _check_device(name: str) -> None:
    """--device names a device this machine has (the error says which names exist and what is missing)."""
    from .rl.devices import resolve_device

    try:
        resolve_device(name)
    except ValueError as error:  # (with --device auto, the error is PGCOURSE_DEVICE's, and says so)
        raise UsageError(f"--device: {error}" if name != "auto" else str(error)) from None


@contextlib.contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """While training from the command line, SIGTERM (``timeout``, a cluster's job limit) and SIGHUP (a closed
    terminal) arrive as Ctrl-C does: the first stops training after the update it is in and the run is saved,
    resumable (issue 48: it was lost without ``--checkpoint-every``). Only in the main thread; the previous
    handlers come back after."""
    # Ctrl-C ignored (a job started without job control): SIGTERM must still end the process, so nothing is
    # redirected; a signal already ignored (SIGHUP under nohup) stays ignored
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield
        return
    kinds = [kind for kind in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
             if kind is not None and signal.getsignal(kind) != signal.SIG_IGN]
    previous = {kind: signal.getsignal(kind) for kind in kinds}
    for kind in kinds:
        signal.signal(kind, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler if handler is not None else signal.SIG_DFL)


def cmd_train(args: argparse.Namespace) -> int:
    from .rl.api import run_training as train

    overrides = parse_settings(args.set)
    _env_kwargs_option(args, overrides)
    out = Path(args.out or f"runs/{args.algo}-{args.env}-seed{args.seed}")
    _check_out_free(out, args.overwrite)
    _check_env_id(args.env, overrides.get("env_kwargs"))
    _check_device(args.device)  # an unknown or unavailable device fails now, not after building everything
    overrides.setdefault("progress", not args.quiet)
    started = time.perf_counter()
    checkpoints = {"checkpoint_every": args.checkpoint_every, "checkpoint_dir": out} if args.checkpoint_every else {}
    with _termination_as_interrupt():
        run = train(args.algo, args.env, seed=args.seed, total_steps=args.steps, device=args.device,
                    log_dir=args.log_dir, **checkpoints, **overrides)
    return _report_training(run, time.perf_counter() - started, out, args.overwrite, bool(checkpoints))


def cmd_resume(args: argparse.Namespace) -> int:
    from .rl.api import resume_quietly as resume
    from .rl.run import load

    source = Path(args.run_dir)
    out = Path(args.out) if args.out else source
    previous = load(source)
    if out.resolve() != source.resolve():
        _check_out_free(out, args.overwrite)
    _check_device(args.device)
    every = args.checkpoint_every or previous.outputs.get("checkpoint_every")  # a run keeps its own cadence
    checkpoints = {"checkpoint_every": every, "checkpoint_dir": out} if every else {}
    started = time.perf_counter()
    with _termination_as_interrupt():
        episodes = {"max_episodes": args.episodes} if args.episodes is not None else {}  # None: the run's own
        run = resume(previous, total_steps=args.steps, device=args.device, progress=not args.quiet,
                     log_dir=args.log_dir, **episodes, **checkpoints)
    return _report_training(run, time.perf_counter() - started, out, True, bool(checkpoints))


def _overshoot(config: Any, done: int) -> str:
    """Why a run that finished did more env steps than its budget: the loops stop at the end of a whole update."""
    if done <= config.total_steps:
        return ""
    if config.algo in ("reinforce", "reinforce_baseline"):
        return " (whole episodes: an update ends when its last episode does)"
    return f" (whole rollouts of num_envs x n_steps = {config.num_envs} x {config.n_steps} steps)"


def _report_training(run: Any, seconds: float, out: Path, overwrite: bool, checkpointed: bool) -> int:
    """Save the run (unless a hard stop would replace a resumable checkpoint) and say what happened;
    130 after Ctrl-C, as a shell expects of an interrupted command."""
    config, history = run.config, run.history
    interrupted = history.status.startswith("interrupted")
    if checkpointed and run.training_state is None:
        path = out.resolve()
        saved = f"the last checkpoint is kept in {path} (this stop was inside an update)"
    else:
        path = run.save(out, overwrite=overwrite or checkpointed)
        saved = f"saved to {path}"
    returns = history.episode_returns
    last = returns[-20:]
    steps = history.updates["env_step"]
    done = int(steps[-1]) if len(steps) else 0
    print(f"trained {config.algo} on {config.env_id} (seed {config.seed}) on {run.device}: {done:,} "
          f"of {config.total_steps:,} env steps{_overshoot(config, done)}, {len(returns):,} episodes, "
          f"status {history.status}")
    if run.device_reason:  # its first clause: the whole reason is the run's device_reason (meta.json when saved)
        reason = run.device_reason.split(". ")[0].split(" (")[0]
        more = "; the reason in full: device_reason in the run's meta.json" if reason != run.device_reason else ""
        print(f"device: {run.device} ({reason}{more})")
    if len(last):
        print(f"mean return of the last {len(last)} episodes: {last.mean():.1f}")
    if history.solved_at is not None:
        print(f"solved (evaluation mean {history.solved_at['mean']:.1f}) at env step "
              f"{int(history.solved_at['env_step']):,}, after {history.solved_at['wall_time']:.1f} s")
    print(f"wall time: {seconds:.1f} s")
    print(saved)
    if interrupted:
        can_resume = run.training_state is not None or checkpointed
        print(f"interrupted: continue with 'pgcourse resume {path}'" if can_resume else
              "interrupted inside an update: this run cannot be resumed exactly (use --checkpoint-every next time)",
              file=sys.stderr)
        return 130
    return 0


def _asked_mode(args: argparse.Namespace) -> str | None:
    """``--mode`` (or the older ``--stochastic``, which is ``--mode sample``); None: the run's eval_mode."""
    if args.stochastic and args.mode not in (None, "sample"):
        raise UsageError(f"--stochastic is --mode sample; it contradicts --mode {args.mode}")
    return args.mode or ("sample" if args.stochastic else None)


def cmd_eval(args: argparse.Namespace) -> int:
    from .rl.config import SOLVE_THRESHOLDS
    from .rl.envs import describe_env
    from .rl.evaluation import RANGE_FRACTION, disagreement_note, evaluate, modes_disagree, resolve_env
    from .rl.run import load

    run = load(args.run_dir)
    asked = _asked_mode(args)
    run_mode = run.config.eval_mode
    first = asked if asked in ("greedy", "sample") else run_mode
    other = "sample" if first == "greedy" else "greedy"
    env_id, env_kwargs = resolve_env(run, args.env, parse_env_args(args.env_arg))
    results = {mode: evaluate(run, env_id, episodes=args.episodes, seed=args.seed, mode=mode, env_kwargs=env_kwargs)
               for mode in (first, other)}
    sharp = modes_disagree(results["greedy"], results["sample"])
    threshold = SOLVE_THRESHOLDS.get(env_id)

    def solved(mean: float) -> str:
        return "" if threshold is None else f"solved: {'yes' if mean >= threshold else 'no'} (threshold {threshold:g})"

    label = (f"{first}: the run's eval_mode" if first == run_mode else
             f"{first}, as asked; the run's eval_mode is {run_mode}")
    mean, std, returns = results[first]
    print(f"{run.config.algo} on {describe_env(env_id, env_kwargs)}: mean return {mean:.1f} ± {std:.1f} over "
          f"{args.episodes} episodes (seeds {args.seed}..{args.seed + args.episodes - 1}, {label})")
    if threshold is not None:
        print(solved(mean))
    print("returns: " + " ".join(f"{value:.1f}" for value in returns))
    if sharp or asked == "both":
        mean, std, returns = results[other]
        print(f"{other}: mean return {mean:.1f} ± {std:.1f} over the same episodes"
              + (f"; {solved(mean)}" if threshold is not None else ""))
        print(f"returns ({other}): " + " ".join(f"{value:.1f}" for value in returns))
    if sharp:
        print(f"the two modes disagree sharply (their means differ by more than both stds and more than "
              f"{RANGE_FRACTION:.0%} of the range of the returns): "
              f"{disagreement_note(results['greedy'], results['sample'])}")
    return 0


def cmd_gif(args: argparse.Namespace) -> int:
    from .course.views.render import rollout_gif
    from .rl.run import load

    run = load(args.run_dir)
    asked = _asked_mode(args)
    out = args.out or str(Path.cwd() / f"{Path(args.run_dir).resolve().name}.gif")
    path = rollout_gif(run, args.env, out, seed=args.seed, deterministic=None if asked is None else asked == "greedy",
                       caption=not args.no_caption, env_kwargs=parse_env_args(args.env_arg))
    size = Path(path).stat().st_size
    print(f"wrote {path} ({size / 1024:.1f} KiB)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.part == "device":
        from .bench import device
        return device.main(widths=args.widths, quick=args.quick)
    if args.part == "scaling":
        from .bench import scaling
        return scaling.main(widths=args.widths, quick=args.quick, json_path=args.json)
    if args.part == "envs":
        from .bench import env_speed
        timing = ["--seconds", "0.3", "--repeats", "3"] if args.quick else []
        return env_speed.main(["--num-envs", *map(str, args.widths or env_speed.DEFAULT_NUM_ENVS), *timing])
    return bench.main(algos=args.algos, envs=args.envs, seeds=args.seeds, quick=args.quick,
                      stop_when_solved=args.stop_when_solved, sb3=not args.no_sb3, json_path=args.json,
                      device=args.device, suite=not args.skip_suite, comparisons=not args.skip_comparisons,
                      compare_seeds=args.compare_seeds, scaling=not args.skip_scaling,
                      batched_seeds=not args.skip_batched_seeds)


def parse_grid_axis(text: str) -> tuple[str, list[Any]]:
    """``"clip_eps=0.1,0.2,100"`` -> ``("clip_eps", [0.1, 0.2, 100])``; tuples keep their commas
    (``"hidden_sizes=(32,32),(64,64)"``); words are strings (``"traps=long_rollout,low_critic_lr"``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier() or not raw.strip():
        raise UsageError(f"--grid expects key=value1,value2,... (e.g. --grid clip_eps=0.1,0.2), got {text!r}")
    if key in _DEDICATED:
        raise UsageError(f"--grid {key}=...: {'use --seeds' if key == 'seed' else 'cannot be swept here'}")
    try:
        values = ast.literal_eval(f"[{raw}]")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        values = [parse_setting(f"{key}={item}")[1] for item in raw.split(",")]
    return key, list(values)


def parse_seeds(text: str) -> list[int]:
    """``"10"`` -> seeds 0..9; ``"3-7"`` -> 3..7; ``"0,4,9"`` -> those seeds."""
    try:
        if "," in text:
            seeds = [int(item) for item in text.split(",")]
        elif "-" in text:
            low, high = (int(item) for item in text.split("-", 1))
            seeds = list(range(low, high + 1))
        else:
            seeds = list(range(int(text)))
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise UsageError(f"--seeds expects a count (10), a range (0-9) or a list (0,4,9) of seeds >= 0, got {text!r}")
    return seeds


def cmd_sweep(args: argparse.Namespace) -> int:
    from .course.sweeps import SweepResultsError, sweep, verify

    if args.verify:
        if args.algo or args.env or args.grid or args.set:
            raise UsageError("--verify FOLDER re-runs trials of a finished sweep; give no ALGO, --env, --grid or --set")
        if args.env_arg or args.steps is not None:
            raise UsageError("--verify FOLDER re-runs each trial with the settings saved in FOLDER (its env_kwargs "
                             f"and total_steps included); give no {'--env-arg' if args.env_arg else '--steps'}")
        try:
            report = verify(args.verify, sample=args.sample, seed=args.sample_seed, workers=args.workers,
                            progress=not args.quiet, exact=args.exact, min_arm_seeds=args.min_arm_seeds)
        except SweepResultsError as error:
            raise UsageError(str(error)) from None
        print(report)
        return 0 if report.ok else 1
    if args.exact:
        raise UsageError("--exact goes with --verify FOLDER (accept bit-for-bit re-runs only)")
    if not args.algo or not args.env:
        raise UsageError("give ALGO and --env (e.g. pgcourse sweep ppo --env CartPole-v1 --seeds 10 --out sweeps/ppo), "
                         "or --verify FOLDER")
    if not args.out:
        raise UsageError("--out FOLDER is required: every finished trial is written there (and a rerun resumes)")
    axes = [parse_grid_axis(item) for item in args.grid or []]
    repeated = sorted({key for key, _ in axes if sum(other == key for other, _ in axes) > 1})
    if repeated:
        raise UsageError(f"--grid {repeated[0]}=... is given twice; list every value once: "
                         f"--grid {repeated[0]}=VALUE1,VALUE2")
    grid = dict(axes) or None
    overrides = parse_settings(args.set)
    _env_kwargs_option(args, overrides)
    try:
        results = sweep(args.algo.split(","), args.env.split(","), parse_seeds(args.seeds), grid, folder=args.out,
                        backend=args.backend, workers=args.workers, address=args.address, num_gpus=args.num_gpus,
                        retries=args.retries, progress=not args.quiet, compress=args.compress,
                        total_steps=args.steps, **overrides)
    except SweepResultsError as error:
        raise UsageError(str(error)) from None
    if results.interrupted:
        print(f"pgcourse sweep: interrupted; {len(results.trials)} finished trials are kept in {results.folder}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    print(results.summary())
    return 1 if results.failed else 0


def runs_title(runs: list[Any]) -> str:
    """A figure's title for saved runs: what they share ("ppo on CartPole-v1, 2 seeds"), each part that differs
    as the list of its values ("a2c and ppo on CartPole-v1")."""
    def listed(values: list[str]) -> str:
        unique = list(dict.fromkeys(values))
        return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]
    title = (f"{listed([run.config.algo for run in runs])} on {listed([run.config.env_id for run in runs])}")
    seeds = sorted({run.config.seed for run in runs})
    return title + (f", seed {seeds[0]}" if len(seeds) == 1 else f", {len(seeds)} seeds")


def cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .rl.run import FORMAT_NAME, load
    from .course.sweeps import plot_sweep

    folders = [Path(item) for item in args.folders]
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder (expected a sweep's results folder or a saved run)")
    sweeps = [folder for folder in folders if (folder / "sweep.json").is_file()]
    if sweeps and len(folders) > 1:
        raise UsageError("give one sweep folder, or one or more saved runs (not both)")
    out = Path(args.out or f"{folders[0].resolve().name}.png")
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--out {out}: expected a .png, .svg or .pdf file")
    if sweeps:
        plot_sweep(sweeps[0], statistic=args.statistic, window=args.window, path=out)
    else:
        import matplotlib.pyplot as plt

        from .course.views.plotting import plot_learning_curve

        runs = []
        for folder in folders:
            if not (folder / "meta.json").is_file():
                raise UsageError(f"{folder} is neither a sweep folder (sweep.json) nor a saved {FORMAT_NAME} (meta.json)")
            runs.append((folder, load(folder)))
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for folder, run in runs:
            plot_learning_curve(run, window=args.window, ax=ax,
                                label=f"{folder.name} ({run.config.algo}, seed {run.config.seed})")
        ax.set_title(runs_title([run for _, run in runs]))  # not the last run's own "<algo> on <env>"
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    print(f"wrote {out}")
    return 0


def cmd_handout(args: argparse.Namespace) -> int:
    from .classroom.handout import HandoutError, write_handout

    try:
        written = write_handout(args.dir, args.course)
    except HandoutError as error:
        raise UsageError(str(error)) from None
    print(f"wrote the handout into {args.dir}: {', '.join(path.name for path in written)} "
          "(no solutions/, tests/, tools/ or docs/; see docs/teachers.md for what the package still shows)")
    return 0


def cmd_exercises(args: argparse.Namespace) -> int:
    try:
        from .classroom import exercisegen
    except ImportError as error:
        raise UsageError(f"the exercise generator is not available: {error}") from None
    return int(exercisegen.main(check=args.check) or 0)


def cmd_grade(args: argparse.Namespace) -> int:
    from .classroom import grading

    return grading.run(args)


# -- the parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="pgcourse", description="Policy-gradient course tools: train, evaluate, record GIFs, benchmark.",
        epilog="Run 'pgcourse COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"pgcourse {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train an agent and save the run folder",
        description="Train ALGO on a gymnasium environment with the course defaults and save the run.",
        epilog="examples:\n  pgcourse train ppo --env CartPole-v1 --seed 0 --steps 50000 --out runs/ppo-cartpole\n"
               "  pgcourse train a2c --env Pendulum-v1 --set lr=1e-3 --set hidden_sizes=(32,32) --set anneal_lr=False",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("algo", metavar="ALGO", choices=ALGORITHMS, help=f"one of {', '.join(ALGORITHMS)}")
    train.add_argument("--env", required=True, metavar="ENV", help="gymnasium id, e.g. CartPole-v1 or Pendulum-v1")
    train.add_argument("--seed", type=_int_at_least(0, "0 or 42"), default=0, help="seed (default 0)")
    train.add_argument("--steps", type=_int_at_least(1), default=None, metavar="N",
                       help="env-step budget (default: the course default for ALGO and the action space)")
    train.add_argument("--out", metavar="DIR", help="run folder (default runs/<algo>-<env>-seed<seed>)")
    train.add_argument("--device", default="auto", help="auto (the CPU, or $PGCOURSE_DEVICE), cpu, cuda, cuda:N, mps")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config field, repeatable: lr=1e-3, hidden_sizes=(32,32), anneal_lr=False")
    train.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                       help="a keyword argument of the environment, repeatable: gym.make(ENV, KEY=VALUE, ...), saved "
                            "as the run's env_kwargs; VALUE is read as JSON (true, 0.5, [1, 2]), else as a Python "
                            "literal, else as text: --env-arg continuous=true")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--checkpoint-every", type=_int_at_least(1), metavar="N",
                       help="save the run, resumable, to --out every N env steps (and at the end); after a crash "
                            "or a second Ctrl-C, 'pgcourse resume DIR' continues from the last checkpoint")
    train.add_argument("--log-dir", metavar="DIR",
                       help="also write the history as CSV and TensorBoard event files to DIR as training goes")
    train.set_defaults(handler=cmd_train)

    resume = commands.add_parser(
        "resume", help="continue a saved run where it stopped (an interrupted run, a checkpoint, or more steps)",
        description="Continue a saved run with its own settings, optimiser state, random generators and "
                    "environments: the result equals a run that never stopped. Ctrl-C in 'pgcourse train' stops "
                    "after the current update and saves a run this command continues.",
        epilog="examples:\n  pgcourse resume runs/ppo-CartPole-v1-seed0\n"
               "  pgcourse resume runs/ppo-CartPole-v1-seed0 --steps 200000   (train a finished run further)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    resume.add_argument("run_dir", metavar="RUN_DIR", help="folder written by 'pgcourse train' (or a checkpoint)")
    resume.add_argument("--steps", type=_int_at_least(1), default=None, metavar="N",
                        help="new env-step budget (default: the run's own; larger to train a finished run further)")
    resume.add_argument("--episodes", type=_int_at_least(1), default=None, metavar="N",
                        help="new episode budget, for a run trained with max_episodes (default: the run's own)")
    resume.add_argument("--out", metavar="DIR", help="where the continued run is saved (default: RUN_DIR, replaced "
                                                      "by the continued run, which holds all of its history)")
    resume.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --out")
    resume.add_argument("--device", default="auto", help="auto (the CPU, or $PGCOURSE_DEVICE), cpu, cuda, cuda:N, mps")
    resume.add_argument("--checkpoint-every", type=_int_at_least(1), metavar="N",
                        help="save the run, resumable, to --out every N env steps")
    resume.add_argument("--log-dir", metavar="DIR",
                        help="append the new history rows to the CSV/TensorBoard logs in DIR")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    resume.set_defaults(handler=cmd_resume)

    evaluate = commands.add_parser(
        "eval", help="evaluate a saved run",
        description="Play seeded episodes with a saved run and print the mean ± std of the returns.")
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="folder written by 'pgcourse train' or run.save")
    evaluate.add_argument("--episodes", type=_int_at_least(1), default=20, help="episodes (default 20)")
    evaluate.add_argument("--seed", type=_int_at_least(0, "0 or 42"), default=10_000,
                          help="seed of the first episode; episode i uses seed + i (default 10000)")
    evaluate.add_argument("--env", metavar="ENV", help="environment (default: the one the run was trained on)")
    evaluate.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                          help="a keyword argument of the environment, repeatable (default: the run's own env_kwargs "
                               "on its own environment); VALUE is read as JSON, else as a Python literal, else as text")
    evaluate.add_argument("--mode", choices=("greedy", "sample", "both"), default=None,
                          help="greedy: the most likely action (argmax / Gaussian mean); sample: actions drawn from "
                               "the policy (seeded); both: print both (default: the run's eval_mode; the other mode "
                               "is printed too when it disagrees sharply)")
    evaluate.add_argument("--stochastic", action="store_true", help="the same as --mode sample")
    evaluate.set_defaults(handler=cmd_eval)

    gif = commands.add_parser("gif", help="record one episode of a saved run as a GIF",
                              description="Record one episode of a saved run to a looping GIF.")
    gif.add_argument("run_dir", metavar="RUN_DIR", help="folder written by 'pgcourse train' or run.save")
    gif.add_argument("--out", metavar="FILE.gif",
                     help="GIF to write (replaced if it exists; default: RUN_DIR's name + .gif, in this folder)")
    gif.add_argument("--no-caption", action="store_true",
                     help="no caption (default: algorithm, env and the episode's return under the frames)")
    gif.add_argument("--seed", type=_int_at_least(0, "0 or 42"), default=0, help="episode seed (default 0)")
    gif.add_argument("--env", metavar="ENV", help="environment (default: the one the run was trained on)")
    gif.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                     help="a keyword argument of the environment, repeatable (default: the run's own env_kwargs "
                          "on its own environment); VALUE is read as JSON, else as a Python literal, else as text")
    gif.add_argument("--mode", choices=("greedy", "sample"), default=None,
                     help="greedy: the most likely action; sample: actions drawn from the policy, seeded with --seed "
                          "(default: the run's eval_mode)")
    gif.add_argument("--stochastic", action="store_true", help="the same as --mode sample")
    gif.set_defaults(handler=cmd_gif)

    bench = commands.add_parser(
        "bench", help="benchmark the algorithms (and compare PPO with Stable-Baselines3)",
        description="Train every algorithm of the suite on every seed, evaluate the final policies and print how "
                    "many seeds solved and how fast; then compare PPO on CartPole-v1 with Stable-Baselines3's, side "
                    "by side: time to solve under the same rule (evaluate every 4,096 steps, evaluations timed, stop "
                    "at 475) and env steps per second at equal work (rl-zoo's settings, 100k steps). The report "
                    "names the command and the machine. The full benchmark takes a long time (many minutes per "
                    "seed); try --quick first, or --skip-suite for the comparisons alone.")
    bench.add_argument("part", nargs="?", choices=("device", "envs", "scaling"),
                       help="device: PPO with env_backend='torch' on the CPU and the GPU at a few widths; writes the "
                            "crossover that device='auto' reads (on a machine without CUDA it says so). scaling: "
                            "env steps/s of PPO CartPole from 1,024 envs up (to 262,144 on a GPU) beside a plain-torch "
                            "PPO loop doing the same work, and of A agents x N envs (pg.train_many), on the device "
                            "present; --json writes the numbers with the device, torch version and date. envs: "
                            "CartPole-v1 steps per CPU second of each vector env (gymnasium's numpy CartPoleVectorEnv, "
                            "the course's, with and without episode statistics, the torch env), interleaved rounds, "
                            "medians")
    bench.add_argument("--widths", nargs="+", type=_int_at_least(1), metavar="N",
                       help="bench device / envs / scaling: the num_envs widths to time (default 8 64 512 4096; --quick "
                            "8 64 512 for device, shorter measurements for envs; scaling: 1024 to 262144 on a GPU, to "
                            "16384 on a CPU, --quick 1024 4096)")
    bench.add_argument("--algos", nargs="+", choices=ALGORITHMS, metavar="ALGO",
                       help=f"only these algorithms ({', '.join(ALGORITHMS)})")
    bench.add_argument("--envs", nargs="+", metavar="ENV", help="only these environments (CartPole-v1, Pendulum-v1)")
    bench.add_argument("--seeds", nargs="+", type=_int_at_least(0, "0 or 42"), metavar="N",
                       help="seeds (default 0 1 2 3 4; with --quick 0 1)")
    bench.add_argument("--quick", action="store_true",
                       help="about 45 s on an idle 2-core machine (longer when it is busy): 2 seeds, small budgets, each run stops when solved, "
                            "sweep scaling without Ray; a row its budget cannot solve says so instead of a number")
    bench.add_argument("--stop-when-solved", action="store_true",
                       help="end each run at its first solving evaluation (faster; 'final' = at solve time)")
    bench.add_argument("--no-sb3", action="store_true",
                       help="skip Stable-Baselines3's side (pgcourse's side of the comparisons still runs)")
    bench.add_argument("--skip-suite", action="store_true", help="only the side-by-side comparisons with SB3")
    bench.add_argument("--skip-comparisons", action="store_true",
                       help="only the suite (SB3, unless --no-sb3, runs its 100k-step reference for the old rule)")
    bench.add_argument("--skip-scaling", action="store_true",
                       help="skip the sweep-scaling measurement (20 PPO trials on 1 and all workers, and on Ray)")
    bench.add_argument("--skip-batched-seeds", action="store_true",
                       help="skip timing 10 PPO seeds as one batch (pg.train_many) against one after another")
    bench.add_argument("--compare-seeds", nargs="+", type=_int_at_least(0, "0 or 42"), metavar="N",
                       help="seeds of the comparisons (default: --seeds; equal work uses the first 3, 1 with --quick)")
    bench.add_argument("--json", metavar="FILE", help="also write every per-seed result to this JSON file")
    bench.add_argument("--device", default="cpu", help="training device (default cpu: fastest for these small nets)")
    bench.set_defaults(handler=cmd_bench)

    sweep = commands.add_parser(
        "sweep", help="train a grid of settings x seeds in parallel (this machine or a Ray cluster), resumably",
        description="Train every combination of ALGO(s), --env(s) and --grid values, for every seed, on a process "
                    "pool (default: one worker per core) or a Ray cluster. Each finished trial is written at once to "
                    "--out; running the same command again resumes. --verify re-runs a sample of finished trials "
                    "and checks their histories are identical.",
        epilog="examples:\n  pgcourse sweep ppo --env CartPole-v1 --seeds 10 --grid clip_eps=0.1,0.2,100 --steps 50000 "
               "--out sweeps/clip\n  pgcourse sweep ppo,a2c --env CartPole-v1,Acrobot-v1 --seeds 0-9 --backend ray "
               "--address ray://head:10001 --out sweeps/big\n  pgcourse sweep --verify sweeps/clip --sample 3",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("algo", metavar="ALGO[,ALGO]", nargs="?", help=f"one or more of {', '.join(ALGORITHMS)}")
    sweep.add_argument("--env", metavar="ENV[,ENV]", help="gymnasium id(s), e.g. CartPole-v1")
    sweep.add_argument("--seeds", default="10", metavar="N|A-B|A,B,...", help="10 = seeds 0-9 (default), 3-7, or 0,4,9")
    sweep.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                       help="a setting and its values, repeatable (every combination is run): clip_eps=0.1,0.2")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting every trial shares, repeatable")
    sweep.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                       help="a keyword argument of the environment(s) every trial shares, repeatable (env_kwargs); "
                            "VALUE is read as JSON, else as a Python literal, else as text")
    sweep.add_argument("--steps", type=_int_at_least(1), default=None, metavar="N", help="env-step budget per trial")
    sweep.add_argument("--out", metavar="FOLDER", help="results folder (created; an existing sweep there is resumed)")
    sweep.add_argument("--backend", choices=("local", "batch", "ray"), default="local",
                       help="local: a process pool on this machine (default); batch: the same pool, each arm's seeds "
                            "trained as one pg.train_many batch where it can (A2C, PPO without traps); ray: a Ray cluster "
                            "(pgcourse[scale])")
    sweep.add_argument("--workers", type=_int_at_least(1), default=None,
                       help="processes (local, batch) or CPUs of the Ray instance started here (default: one per core)")
    sweep.add_argument("--address", default=None,
                       help="Ray cluster: ray://HEAD:10001 or HEAD:6379 (default: RAY_ADDRESS, else start Ray here)")
    sweep.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per trial (ray backend; trials train on cuda)")
    sweep.add_argument("--retries", type=_int_at_least(0), default=1, help="re-runs of a failed trial (default 1)")
    sweep.add_argument("--compress", action="store_true", help="write trials as .json.gz")
    sweep.add_argument("--verify", metavar="FOLDER", help="re-run finished trials of FOLDER and say how each agrees (bit for bit, "
                       "within tolerance, or inside the arm's spread); exit 1 if any does not")
    sweep.add_argument("--sample", type=_int_at_least(1), default=3, help="trials --verify re-runs (default 3)")
    sweep.add_argument("--exact", action="store_true",
                       help="with --verify: accept bit-for-bit re-runs only (on the machine that made the folder); "
                            "by default a re-run may also agree within a tolerance, or part over a rounding "
                            "difference and land inside the spread of the arm's other seeds (another CPU)")
    sweep.add_argument("--min-arm-seeds", type=_int_at_least(1), default=1,
                       help="with --verify: draw only trials whose arm has at least this many finished seeds (3: "
                            "any machine can judge each one; a single-seed arm that parts over rounding on another "
                            "CPU is reported unjudged)")
    sweep.add_argument("--sample-seed", type=_int_at_least(0, "0 or 42"), default=None,
                       help="seed of --verify's random choice (default: a fresh one, printed)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=cmd_sweep)

    plot = commands.add_parser(
        "plot", help="plot learning curves of a sweep (with confidence bands) or of saved runs",
        description="Plot a sweep's results folder (curves aggregated over seeds with 95% bootstrap bands, and "
                    "interval estimates of the final returns), or the learning curves of one or more saved runs.",
        epilog="examples:\n  pgcourse plot sweeps/clip --out clip.png\n  pgcourse plot runs/ppo-seed0 runs/ppo-seed1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    plot.add_argument("folders", nargs="+", metavar="FOLDER", help="a sweep's results folder, or saved run folders")
    plot.add_argument("--out", metavar="FILE.png", help="image to write (default: the first folder's name + .png)")
    plot.add_argument("--window", type=_int_at_least(1), default=20, help="moving-average window in episodes (20)")
    plot.add_argument("--statistic", choices=("iqm", "mean", "median"), default="iqm",
                      help="aggregate over seeds in a sweep plot (default iqm)")
    plot.set_defaults(handler=cmd_plot)

    exercises = commands.add_parser(
        "exercises", help="generate exercises/ from solutions/",
        description="Generate the exercise notebooks from the solution notebooks (solution blocks become stubs).")
    exercises.add_argument("--check", action="store_true",
                           help="only check that exercises/ is up to date; exit 1 if it is not")
    exercises.set_defaults(handler=cmd_exercises)

    handout = commands.add_parser(
        "handout", help="write the course a graded class receives (no solutions/) into a new or empty folder",
        description="Write the course for a graded class into DIR: START_HERE (without its column of solutions), "
                    "the lessons, the exercises, the cached figures and the package, without solutions/, tests/, "
                    "tools/ and the teachers' docs. DIR must be new or empty. What it cannot hide (the package's "
                    "reference code): docs/teachers.md, 'A handout for graded use'.")
    handout.add_argument("dir", metavar="DIR", help="the folder to write (new or empty)")
    handout.add_argument("--course", metavar="ROOT", help="the course folder (default: this folder or a parent, "
                         "else pgcourse's own repository)")
    handout.set_defaults(handler=cmd_handout)

    from .classroom.grading import add_arguments as add_grade_arguments

    grade = commands.add_parser(
        "grade", help="grade the students' exercise notebooks (a whole class at once)",
        description="Grade filled exercise notebooks: only the student's code (the answer cells and code cells they "
                    "added) is taken from a submission; checks, setup and points come from the course. Each "
                    "submission runs sandboxed, with time and memory limits. Writes a CSV gradebook and a JSON file "
                    "with each check's feedback; with the term options, also feedback files, a term gradebook and "
                    "Canvas/Moodle exports.",
        epilog="examples:\n  pgcourse grade submitted/ --out grades.csv\n"
               "  pgcourse grade alice.ipynb bob.ipynb --chapter 01_reinforce --out grades.csv\n"
               "  pgcourse grade downloads/hw2 --assignment hw2.toml --out grades/hw2.csv --gradebook term.csv "
               "--feedback feedback/hw2\n"
               "  pgcourse grade downloads/hw2 --student jonescarol --update --out grades/hw2.csv --gradebook term.csv\n"
               "  pgcourse grade --update --manual hw2-manual.csv --out grades/hw2.csv --gradebook term.csv\n"
               "  pgcourse grade --export canvas --gradebook term.csv --roster canvas-export.csv --out canvas.csv\n"
               "  pgcourse grade --bench --chapter 01_reinforce\n"
               "the term plan: docs/teachers.md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_grade_arguments(grade)
    grade.set_defaults(handler=cmd_grade)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    import gymnasium as gym

    from .rl.run import RunLoadError
    return (UsageError, ConfigError, RunLoadError, FileExistsError, FileNotFoundError, NotADirectoryError,
            ValueError, gym.error.Error)


def unknown_arguments(parser: argparse.ArgumentParser, command: str | None, extras: Sequence[str]) -> str:
    """What to say of arguments ``command`` does not know: the option nearest a typo (``--stesp``: did you mean
    ``--steps``?), and for a config setting written as an option (``--num-envs 4``) the ``--set`` it goes through."""
    import difflib

    sub = parser._subparsers._group_actions[0].choices.get(command) if command and parser._subparsers else None
    known = [option for action in (sub or parser)._actions for option in action.option_strings]
    said = []
    for index, token in enumerate(extras):
        if not token.startswith("--"):
            continue
        name = token[2:].split("=")[0]
        setting = name.replace("-", "_")
        value = token.split("=", 1)[1] if "=" in token else (extras[index + 1] if index + 1 < len(extras) else "VALUE")
        close = difflib.get_close_matches(token.split("=")[0], known, n=1, cutoff=0.75)
        if "--set" in known and setting in _setting_names():
            said.append(f"{token}: settings go through --set, e.g. --set {setting}={value}")
        elif close:
            said.append(f"{token}: did you mean {close[0]}?")
    usage = (sub or parser).format_usage().strip()
    return (f"{usage}\npgcourse{' ' + command if command else ''}: error: unrecognized argument(s): {' '.join(extras)}"
            + "".join(f"\n  {line}" for line in said))


def _setting_names() -> set[str]:
    """Every setting of every algorithm's config (what ``--set NAME=VALUE`` takes)."""
    from dataclasses import fields

    from .rl.config import CONFIG_CLASSES
    return {field.name for cls in CONFIG_CLASSES.values() for field in fields(cls)}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgcourse`` command; returns the exit code."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        print(unknown_arguments(parser, getattr(args, "command", None), extras), file=sys.stderr)
        return 2
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():  # a warning is one line of the command's, not Python's file:line and source
            warnings.showwarning = lambda message, category, *rest: print(
                f"pgcourse {args.command}: warning: {message}", file=sys.stderr)
            return args.handler(args)
    except KeyboardInterrupt:
        print(f"pgcourse {args.command}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"pgcourse {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
