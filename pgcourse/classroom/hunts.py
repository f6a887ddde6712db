"""Graded bug hunts (exercise 06, part A): six mystery trainers made for each student, and the teacher's key.

    python -m pgcourse.classroom.hunts --out hunts --key hunt-key.json alice bob "Carol Diaz_1234"
    python -m pgcourse.classroom.hunts --out hunts --key hunt-key.json --students class.txt   # one id per line
    pgcourse grade submissions/ --chapter 06 --hunt-key hunt-key.json --out grades/06.csv

For each student this trains six runs of the course's PPO or A2C (:data:`TRAINER_SETTINGS`: trainers 1-3 PPO on
CartPole-v1, 4 A2C and 5-6 PPO on Pendulum-v1, the same settings for every student and every bug), each with one
planted bug drawn for that student, and beside each its **correct twin** (the same settings and seed, no bug). It
writes ``<out>/<student>/`` (``hunt.json``, the mysteries ``1/`` to ``6/`` and their twins ``twins/1/`` to
``twins/6/``), saved runs whose configs withhold the seed and the bug; hand each student their folder (or the whole
``<out>``: a classmate's folder answers nothing of another's hunt). The bugs, the seeds and the histories go into the
key (``--key``), which only the teacher keeps: the grader reads it in its trusted worker (``pgcourse grade
--hunt-key``), never inside the students' sandbox (it refuses a key in a folder the sandbox shows).

What a student cannot do: replay a bug against a mystery (no seed); read it from the settings (every run of a
trainer number has the same settings, whatever its bug: traps that live in the settings, :data:`PRESETS`, are not
drawn); copy a classmate's answers (each student's bugs, order and runs are drawn from the secret and the student
id, and the evidence is a number of their own run). Each drawn run is kept only if ``pg.diagnose``'s first lead does
not name its bug and it parts from its twin in a column of a signal the bug acts on (so a full answer exists);
otherwise the draw goes on with another seed (a bug refused twice for a student's kind of run is not drawn again).

Drawing is a pure function of the key's secret and the student id: making the hunts again with the same key gives
the same runs on the same machine; adding students later keeps everyone else's folder and entry (nothing is
overwritten).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import hmac
import json
import os
import random
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from ..course.debugging.bug_hunt import HUNT_FORMAT, KEY_FORMAT, MYSTERIES, WITHHELD_SEED, answerable_signals, first_lead
from ..course.debugging.evidence import COLUMNS, EVIDENCE_COLUMNS, first_parting
from ..rl.api import train
from ..rl.history import Table
from ..rl.planted import BOX_ONLY, PRESETS, TRAPS

# CartPole with a 100-step time limit: episodes are cut within the budget, so a bug in how a time limit is treated
# can act (with the usual 500 steps, no episode reaches the limit in 12k steps: that bug never showed)
_CARTPOLE_PPO = dict(algo="ppo", env_id="CartPole-v1", env_kwargs={"max_episode_steps": 100}, total_steps=12_000,
                     ent_coef=0.01)
_PENDULUM = dict(env_id="Pendulum-v1", total_steps=20_480, log_std_init=0.5, ent_coef=0.01)
# The settings of trainer k, for every student and every bug (ent_coef 0.01 everywhere: entropy_wrong_sign needs a
# bonus to act on, and a bonus only its runs had would name it)
TRAINER_SETTINGS: dict[int, dict[str, Any]] = {1: _CARTPOLE_PPO, 2: _CARTPOLE_PPO, 3: _CARTPOLE_PPO,
                                               4: dict(algo="a2c", **_PENDULUM), 5: dict(algo="ppo", **_PENDULUM),
                                               6: dict(algo="ppo", **_PENDULUM)}
ATTEMPTS = 24  # draws per trainer before giving up (each costs two short trainings)
HISTORY_COLUMNS = ("env_step", *COLUMNS)


def candidates(settings: dict[str, Any]) -> list[str]:
    """The bugs a trainer of ``settings`` may hold: traps of its algorithm, none that lives in the settings
    (:data:`PRESETS`: it would show in the config), none that needs continuous actions on CartPole."""
    return [name for name, (algos, _) in TRAPS.items() if settings["algo"] in algos and name not in PRESETS
            and not (settings["env_id"] == "CartPole-v1" and name in BOX_ONLY)]


def _stream(secret: str, student: str, k: int) -> random.Random:
    digest = hmac.new(bytes.fromhex(secret), f"{student}/{k}".encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _train(settings: dict[str, Any], seed: int, trap: str | None):
    settings = dict(settings)
    algo, env_id = settings.pop("algo"), settings.pop("env_id")
    return train(algo, env_id, seed=seed, device="cpu", progress=False, traps=(trap,) if trap else (), **settings)


def sound(trap: str, settings: dict[str, Any], mystery: Any, twin: Any) -> str | None:
    """None if a run of ``trap`` (``mystery``, beside its ``twin``) can be answered by reasoning; else why not."""
    if first_lead(mystery) == trap:
        return "pg.diagnose's first lead names it"
    readable = tuple(c for signal in answerable_signals(trap, settings) for c in EVIDENCE_COLUMNS.get(signal, ()))
    if first_parting(mystery.history.updates, twin.history.updates, readable) is None:
        return "it never parts from its twin in a signal it acts on"
    return None


def _history(run: Any) -> dict[str, list[float]]:
    return {c: [float(x) for x in run.history.updates[c]] for c in HISTORY_COLUMNS}


def _withheld(run: Any) -> Any:
    run.config = dataclasses.replace(run.config, traps=(), seed=WITHHELD_SEED)
    run.training_state, run.saved_training_state = None, None  # a resumable state would resume without the bug
    for name, table in list(vars(run.history).items()):  # every clock of the run: a bug's cost in seconds
        if isinstance(table, Table) and "wall_time" in table.fields:  # would be a side channel
            rows = table.to_dict()
            rows["wall_time"] = [0.0] * len(rows["wall_time"])
            setattr(run.history, name, Table(table.fields, rows))
    if run.history.solved_at is not None:
        run.history.solved_at = {**run.history.solved_at, "wall_time": 0.0}
    return run


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / "history.json").read_bytes()).hexdigest()


def make_student_hunt(student: str, secret: str, folder: Path,
                      settings: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Draw, train and save ``student``'s six trainers and twins into ``folder``; returns their key entry."""
    settings = TRAINER_SETTINGS if settings is None else settings
    entry: dict[str, Any] = {}
    used: dict[str, set[str]] = {}  # per kind of run: the bugs this student already has (no repeats in a kind)
    refusals: dict[tuple[str, str], int] = {}  # (kind, bug): draws refused; twice and the bug is not drawn again
    runs = {}
    for k in MYSTERIES:
        spec = settings[k]
        kind = f"{spec['algo']}/{spec['env_id']}"
        rng, refused, why, pool = _stream(secret, student, k), [], "not drawn", []
        for _ in range(ATTEMPTS):
            usable = [t for t in candidates(spec) if refusals.get((kind, t), 0) < 2]
            pool = [t for t in usable if t not in used.get(kind, set())] or usable
            if not pool:
                break
            trap, seed = rng.choice(sorted(pool)), rng.randrange(2**31)
            mystery, twin = _train(spec, seed, trap), _train(spec, seed, None)
            why = sound(trap, spec, mystery, twin)
            if why is None:
                break
            refused.append(why)
            refusals[kind, trap] = refusals.get((kind, trap), 0) + 1
        if why is not None or not pool:
            raise RuntimeError(f"student {student!r}, trainer {k}: no sound run in {len(refused)} draws ({refused[-3:]})")
        used.setdefault(kind, set()).add(trap)
        runs[k] = (mystery, twin)
        entry[str(k)] = {"trap": trap, "seed": seed, "settings": dataclasses.asdict(mystery.config) | {"seed": seed},
                         "history": _history(mystery), "twin_history": _history(twin)}
    staging = folder.with_name(f".{folder.name}.partial")  # renamed when whole: Ctrl-C leaves no half folder
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for k, (mystery, twin) in runs.items():
        _withheld(mystery).save(staging / str(k))
        _withheld(twin).save(staging / "twins" / str(k))
    about = {"format": HUNT_FORMAT, "student": student, "made": datetime.date.today().isoformat(),
             "trainers": {str(k): f"{s['algo'].upper()} on {s['env_id']}" for k, s in settings.items()},
             "seeds": "withheld", "bugs": "in your teacher's key only",
             # which runs belong together (load_hunt refuses a folder mixed from two hunts)
             "histories": {str(k): [_digest(staging / str(k)), _digest(staging / "twins" / str(k))] for k in runs}}
    (staging / "hunt.json").write_text(json.dumps(about, indent=1) + "\n", encoding="utf-8")
    staging.rename(folder)
    return entry


def read_key(path: Path) -> dict[str, Any]:
    """The teacher's key at ``path`` (a ValueError that says what is wrong)."""
    try:
        key = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read as a bug-hunt key ({error})") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT or not isinstance(key.get("students"), dict):
        raise ValueError(f"{path} is not a bug-hunt key made by python -m pgcourse.classroom.hunts "
                         f"(expected format {KEY_FORMAT!r})")
    return key


def _check_id(student: str) -> str:
    student = student.strip()
    if not student or student in (".", "..") or "/" in student or "\\" in student or "\0" in student:
        raise ValueError(f"{student!r} cannot be a student id here: it names the student's folder (no '/', not empty)")
    return student


def make_hunts(students: list[str], out: str | Path, key_path: str | Path,
               settings: dict[int, dict[str, Any]] | None = None, log: Any = print) -> dict[str, Any]:
    """Make a hunt folder ``<out>/<student>/`` for each of ``students`` and record them in the key at ``key_path``
    (made with a new secret if it does not exist). A student already in the key keeps their folder and entry; a
    folder that exists for a student the key does not know is an error (nothing is overwritten)."""
    out, key_path = Path(out), Path(key_path)
    students = list(dict.fromkeys(_check_id(s) for s in students))
    if not students:
        raise ValueError("no student ids given: name them, or give --students FILE with one id per line")
    if key_path.exists():
        key = read_key(key_path)
    else:
        key = {"format": KEY_FORMAT, "secret": secrets.token_hex(32), "students": {}}
    if key_path.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"--key {key_path} lies inside --out {out}, which is handed to students: keep the key apart")
    clash = [s for s in students if s not in key["students"] and (out / s).exists()]
    if clash:
        raise ValueError(f"{[str(out / s) for s in clash]} exist but the key has no entry for them: move them away "
                         "or give the key they were made with (nothing is overwritten)")
    for n, student in enumerate(students, 1):
        if student in key["students"] and (out / student).is_dir():
            log(f"[{n}/{len(students)}] {student}: already in the key, kept")
            continue
        if student in key["students"]:  # the key knows the student but the folder is gone: the draw is repeatable
            remade = make_student_hunt(student, key["secret"], out / student, settings)
            if json.dumps(remade) != json.dumps(key["students"][student]):
                raise RuntimeError(f"{out / student} was missing and made again, but its runs differ from the key's "
                                   "(another machine or torch trains them otherwise): restore the folder you handed "
                                   f"out, or move {out / student} away and give {student!r} a new hunt with a new key")
            log(f"[{n}/{len(students)}] {student}: its folder was missing, made again (the same runs as the key's)")
            continue
        key["students"][student] = make_student_hunt(student, key["secret"], out / student, settings)
        _write_private(key_path, json.dumps(key) + "\n")  # after each student: an interrupted run keeps what it made
        log(f"[{n}/{len(students)}] {student}: {out / student}")
    return key


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only (0600), whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(partial, 0o600)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.classroom.hunts", description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="student ids, as the grader will grade them")
    parser.add_argument("--students", metavar="FILE", help="a file with one student id per line")
    parser.add_argument("--out", required=True, help="the folder of the students' hunt folders (hand these out)")
    parser.add_argument("--key", required=True, help="the teacher's key (keep it apart; grade with --hunt-key)")
    args = parser.parse_args(argv)
    ids = list(args.ids)
    try:
        if args.students:
            ids += [line.strip() for line in Path(args.students).read_text(encoding="utf-8").splitlines() if line.strip()]
        make_hunts(ids, args.out, args.key)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"python -m pgcourse.classroom.hunts: {error}", file=sys.stderr)
        return 2
    print(f"key: {args.key} (keep it; grade with pgcourse grade ... --hunt-key {args.key})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["TRAINER_SETTINGS", "candidates", "make_hunts", "make_student_hunt", "read_key", "sound"]
