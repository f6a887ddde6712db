"""Shared test setup: headless rendering, one torch thread, small helpers."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile

os.environ["SDL_VIDEODRIVER"] = "dummy"  # pygame (CartPole rendering) without a display

# The Ctrl-C tests send SIGINT to this process (and a sweep's workers). A launcher that starts the suite in the
# background without job control (nohup, `cmd &` in a script) hands it SIGINT ignored, which Python keeps, so the
# run would never see the Ctrl-C they test: 18 tests failed that way. Restore Python's own handler (and so the
# default for child processes, which inherit an ignored signal across exec but not a handler).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# Short-episode versions of classic-control tasks, so truncations show up within a few dozen steps.
SHORT_CARTPOLE = "pgcourse_test/CartPoleShort-v0"
SHORT_PENDULUM = "pgcourse_test/PendulumShort-v0"


def register_short_envs() -> None:
    if SHORT_CARTPOLE not in gym.registry:
        gym.register(id=SHORT_CARTPOLE, entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                     max_episode_steps=20)
    if SHORT_PENDULUM not in gym.registry:
        gym.register(id=SHORT_PENDULUM, entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
                     max_episode_steps=25)


register_short_envs()

@pytest.fixture(scope="session")
def runner_folder():
    """The grader's runner package (the code the sandboxed student process runs), written once per test session and
    removed after it. In the system's temp folder, as the grader's own: without a sandbox the student process runs as
    another user, who cannot pass through pytest's private tmp_path folders."""
    from pgcourse.classroom.grading.sandbox import write_runner_package

    folder = tempfile.mkdtemp(prefix="pgcourse-test-runner-")
    yield write_runner_package(folder)
    shutil.rmtree(folder, ignore_errors=True)


# Tiny but complete training budgets (each well under a second of CPU on one thread).
TINY_PPO_DISCRETE = dict(total_steps=512, num_envs=4, n_steps=32, minibatch_size=64, update_epochs=2)
TINY_PPO_CONTINUOUS = dict(total_steps=512, num_envs=2, n_steps=128, minibatch_size=128, update_epochs=2)
TINY_A2C = dict(total_steps=512, num_envs=4, n_steps=16)


def assert_history_equal(a, b, ignore: tuple[str, ...] = (), rtol: float | None = None, atol: float = 0.0) -> None:
    """Every column of the episodes, updates and evals tables equal (NaN == NaN), except ``ignore``. With ``rtol``
    the updates and evals tables need only agree within ``rtol``/``atol`` (the episodes stay exact)."""
    for table in ("episodes", "updates", "evals"):
        table_a, table_b = getattr(a, table), getattr(b, table)
        assert len(table_a) == len(table_b), f"{table}: {len(table_a)} rows vs {len(table_b)}"
        for column in table_a.fields:
            if column in ignore:
                continue
            message = f"history.{table}[{column!r}]"
            if rtol is None or table == "episodes":
                np.testing.assert_array_equal(table_a[column], table_b[column], err_msg=message)
            else:
                np.testing.assert_allclose(table_a[column], table_b[column], rtol=rtol, atol=atol, err_msg=message)
    assert a.status == b.status
    strip = lambda solved: None if solved is None else {k: v for k, v in solved.items() if k not in ignore}  # noqa: E731
    assert strip(a.solved_at) == strip(b.solved_at)


def assert_history_close(a, b, ignore: tuple[str, ...] = (), rtol: float = 1e-4, atol: float = 1e-6) -> None:
    """The same run up to rounding: the episodes table equal (the same actions gave the same episodes), the updates
    and evals tables equal within ``rtol``/``atol``. For two code paths that feed the networks the same numbers in
    other arrays: whether their matrix products round alike is a fact of the CPU (on an AMX Xeon they did not)."""
    assert_history_equal(a, b, ignore, rtol=rtol, atol=atol)


TINY_TRPO = dict(total_steps=256, num_envs=4, n_steps=32, minibatch_size=64, critic_epochs=1)
# every training loop once on a short discrete and a short continuous env (REINFORCE refuses Box actions)
EVERY_LOOP_SHORT = [
    ("reinforce", SHORT_CARTPOLE, dict(max_episodes=4, num_envs=2)),
    ("reinforce_baseline", SHORT_CARTPOLE, dict(max_episodes=4, num_envs=2)),
    ("a2c", SHORT_CARTPOLE, dict(TINY_A2C, total_steps=256)),
    ("a2c", SHORT_PENDULUM, dict(TINY_A2C, num_envs=2, total_steps=256)),
    ("ppo", SHORT_CARTPOLE, dict(TINY_PPO_DISCRETE, total_steps=256)),
    ("ppo", SHORT_PENDULUM, dict(TINY_PPO_CONTINUOUS, total_steps=256)),
    ("trpo", SHORT_CARTPOLE, TINY_TRPO),
    ("trpo", SHORT_PENDULUM, dict(TINY_TRPO, num_envs=2, n_steps=64)),
]


def pytest_collection_modifyitems(config, items) -> None:
    """Each test gets the marker of its layer (tests/layers.py): `pytest -m unit tests/` is the fast lane."""
    import pytest
    from layers import layer_of

    for item in items:
        item.add_marker(getattr(pytest.mark, layer_of(item.path, item.get_closest_marker("slow") is not None)))
