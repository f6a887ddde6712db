#!/usr/bin/env python3
"""Regenerate the cached sweep of lesson 06 that measures ``pg.diagnose`` in ``figures/06_diagnose``.

    python tools/regenerate_06.py diagnose --workers 2
    python tools/regenerate_06.py probes       # figures/06_probes.json: the probe table (one process)

Lesson 06 scores ``pg.diagnose`` on every cached run of the lesson: the healthy default runs of
``figures/06_reproduction`` and ``figures/06_reproduction_annealed`` (REINFORCE, REINFORCE+baseline, A2C,
PPO, ten seeds each), the traps of ``figures/06_traps`` and, here, ten seeds of each CartPole trap that
``figures/06_traps`` holds for one seed only (15,000 env steps, the budget of ``pgcourse.course.debugging.MORE_TRAPS``).
It is a ``pg.sweep`` results folder (resumable: run the command again and finished trials are kept);
``pgcourse sweep --verify figures/06_diagnose --sample 1`` re-runs a random trial bit for bit. (The
Pendulum traps stay at one seed each: at 50,000 env steps a Pendulum run took 90 s on the shared 2-core
machine, and forty of them did not fit the time this cache was built in.)

The probe table (``probes``) is described at :data:`PROBE_ARMS`.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

DIAGNOSE_SEEDS = 10
CARTPOLE_STEPS = 15_000
DIAGNOSE_ARMS = [
    {"label": f"CartPole PPO {name}", "algo": "ppo", "env_id": "CartPole-v1", "traps": [name],
     "total_steps": CARTPOLE_STEPS}
    for name in ("advantage_sign_flipped", "stale_old_log_probs", "entropy_wrong_sign", "missing_detach")
]

# Every arm names its own algorithm and environment (algo, env_id None here).
SWEEPS = {"diagnose": Sweep(FIGURES / "06_diagnose", None, None, DIAGNOSE_ARMS, DIAGNOSE_SEEDS, measure=None)}

# The probe table (pgcourse.course.debugging.probes): the correct PPO and A2C and three planted traps, every probe, ten seeds.
# A probe run keeps no history worth caching (the verdict is read from the trained networks), so this is a
# JSON of pgcourse.course.debugging.probes.run_probes rows, not a sweep folder; each run is a few seconds, bit for bit on CPU.
PROBE_SEEDS = 10
PROBE_ARMS = [("ppo", ()), ("ppo", ("advantage_sign_flipped",)), ("ppo", ("truncation_as_termination",)),
              ("a2c", ()), ("ppo", ("low_critic_lr",))]
PROBES_FILE = FIGURES / "06_probes.json"


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_06", name)


def run_probe_table(path: Path = PROBES_FILE, arms=None) -> dict:
    """Train every arm of :data:`PROBE_ARMS` on every probe for :data:`PROBE_SEEDS` seeds and write the rows
    to ``path`` after each arm (an arm already in the file is kept: run again to finish an interrupted table)."""
    import json

    from pgcourse.course.debugging import probes

    started = time.perf_counter()
    payload = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    payload.update(command="python tools/regenerate_06.py probes", gamma=probes.PROBE_GAMMA, steps=probes.PROBE_STEPS,
                   seeds=PROBE_SEEDS, arms=[[algo, list(traps)] for algo, traps in PROBE_ARMS])
    for algo, traps in (PROBE_ARMS if arms is None else arms):
        if any(row["algo"] == algo and row["traps"] == list(traps) for row in payload["rows"]):
            continue
        rows = probes.run_probes(algo, traps, seeds=range(PROBE_SEEDS))
        for row in rows:  # wall times vary from run to run: rounded, they are only a guide
            row["seconds"] = round(row["seconds"], 1)
        payload["rows"] += rows
        payload["seconds"] = round(sum(row["seconds"] for row in payload["rows"]), 1)
        path.write_text(json.dumps(payload, indent=0) + "\n")
        print(f"{algo} {list(traps)}: {len(rows)} runs, {time.perf_counter() - started:.0f} s wall", flush=True)
    return payload


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS, extra={"probes": run_probe_table})
