"""``pg.sweep(backend="ray")`` on a real Ray cluster of two nodes started on this machine for the module.

The cluster (a head and a worker node, one CPU each, on 127.0.0.1) is started with the venv's ``ray``
CLI and Ray 2.60's token authentication, and stopped by killing exactly the processes it started (the
process group of each ``ray start``): ``ray stop`` would kill every Ray process of this user on the
machine, a developer's own cluster included. Skipped only when Ray is not installed (``make test``
installs the ``scale`` extra). About a minute: most of it is Ray starting processes.
"""
from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs the 'scale' extra: pip install 'pgcourse[scale]'")

import pgcourse as pg  # noqa: E402
import pgcourse.sweeps.backends as backends  # noqa: E402
import sweep_helpers  # noqa: E402
from pgcourse.sweeps import RayBackend, expand  # noqa: E402
from pgcourse.sweeps.backends import Lost  # noqa: E402
from pgcourse.sweeps.trial import deterministic_part, run_trial  # noqa: E402
# Ray reads its authentication settings when imported; its own tests re-read them this way (Ray is pinned).
from ray._private.authentication_test_utils import reset_auth_token_state  # noqa: E402

# The cluster's workers cannot import tests/: the helpers travel by value (cloudpickle), through the Ray client too.
ray.cloudpickle.register_pickle_by_value(sweep_helpers)

GRID = {"clip_eps": [0.1, 0.2]}
STEPS = 1024
RAY_CLI = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in the process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _ray_start(arguments: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    # its own session: every daemon it starts stays in its process group, which teardown kills
    return subprocess.Popen([str(RAY_CLI), "start", *arguments, "--num-cpus=1", "--disable-usage-stats"], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


class Cluster:
    def __init__(self, base: Path, client_port: int):
        self.base = base  # the head's temp dir is base/ray: where `ray start` puts it when RAY_TMPDIR=base
        self.address = f"ray://127.0.0.1:{client_port}"
        self.node_ids: set[str] = set()


@pytest.fixture(scope="module")
def cluster():
    assert RAY_CLI.exists(), f"{RAY_CLI} not found although ray imports"
    base = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port, client_port = _free_port(), _free_port()
    # GRPC_POLL_STRATEGY=poll: under gVisor (this sandbox; some CI runners) gRPC's default epoll poller fails
    # in the Ray client's per-connection server ("epoll_wait error: Bad file descriptor") and every
    # ray:// connection times out; poll works everywhere.
    settings = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "GRPC_POLL_STRATEGY": "poll"}
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | settings
    saved = {name: os.environ.get(name) for name in (*settings, "RAY_ADDRESS")}
    started: list[subprocess.Popen] = []
    try:
        started.append(_ray_start(["--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                                   f"--ray-client-server-port={client_port}", "--include-dashboard=false",
                                   f"--dashboard-port={_free_port()}", f"--temp-dir={base / 'ray'}"], env, base))
        deadline = time.monotonic() + 120
        while True:  # the worker node can start as soon as the head's GCS answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert started[0].poll() is None, started[0].communicate()[0][-3000:]
                assert time.monotonic() < deadline, "the head's GCS did not start in 120 s"
                time.sleep(0.2)
        started.append(_ray_start([f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1"], env, base))
        for process, what in zip(started, ("ray start --head", "ray start (worker node)")):
            output, _ = process.communicate(timeout=180)
            assert process.returncode == 0, f"{what} failed:\n{output[-3000:]}"
        for name in saved:
            os.environ.pop(name, None)
        os.environ.update(settings)  # this process is the driver: it needs the token too
        reset_auth_token_state()
        result = Cluster(base, client_port)
        ray.init(address=result.address, log_to_driver=False)
        try:
            deadline = time.monotonic() + 60
            while ray.cluster_resources().get("CPU", 0) < 2:
                assert time.monotonic() < deadline, f"the cluster has {ray.cluster_resources()} after 60 s"
                time.sleep(0.5)
            result.node_ids = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        finally:
            ray.shutdown()
        assert len(result.node_ids) == 2
        yield result
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_auth_token_state()
        deadline = time.monotonic() + 15
        while True:
            for process in started:
                _kill_group(process)
            left = [pid for process in started for pid in _group_members(process.pid)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"


@pytest.fixture(scope="module")
def reference():
    """Each trial of the sweep run here, in this process: what every backend must reproduce."""
    return {spec.trial_id: run_trial(spec.to_dict()) for spec in expand("ppo", "CartPole-v1", 2, GRID,
                                                                       {"total_steps": STEPS})}


def _same_numbers(results, reference) -> None:
    assert [r.trial_id for r in results.trials] == list(reference) and not results.failed
    for record in results.trials:
        expected = reference[record.trial_id]
        assert record.config == expected["config"], record.trial_id
        assert deterministic_part(record.data["history"]) == deterministic_part(expected["history"]), record.trial_id
        assert record.data["history_sha256"] == expected["history_sha256"]


def _ray_backend_running(function, seen=None):
    """A RayBackend class that runs ``function`` and notes, as each result comes back, the trial files
    already written and the trials still running (``seen``) and any Lost outcome."""

    class Backend(RayBackend):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, function=function, **kwargs)

        def next_result(self):
            written = len(list(self.folder.glob("*.json"))) if seen is not None else 0
            spec, outcome = super().next_result()
            if seen is not None:
                seen.append((written, self.in_flight, spec.trial_id, outcome))
            return spec, outcome

    return Backend


def test_a_sweep_on_the_cluster_equals_the_local_one_and_survives_a_lost_worker(cluster, reference, tmp_path,
                                                                                 monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    function = functools.partial(sweep_helpers.crashes_or_raises_once, marker_dir=str(markers),
                                 dies=("clip_eps=0.1", 1), raises=("clip_eps=0.2", 0))
    seen: list = []
    backend_class = _ray_backend_running(sweep_helpers.noting_the_ray_node(function), seen)
    backend_class.folder = tmp_path / "ray" / "trials"
    monkeypatch.setattr(backends, "RayBackend", backend_class)  # what backend="ray" builds
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=tmp_path / "ray", backend="ray",
                       address=cluster.address, progress=False, total_steps=STEPS)
    _same_numbers(results, reference)
    assert not ray.is_initialized()  # the sweep disconnected; the cluster runs on
    assert {r.data["ray_node"] for r in results.trials} <= cluster.node_ids  # they ran on the cluster
    specs = expand("ppo", "CartPole-v1", 2, GRID, {"total_steps": STEPS})
    starts = {spec.label + f" seed {spec.seed}": sweep_helpers.attempts(str(markers), spec.trial_id) for spec in specs}
    by_id = {r.trial_id: r.data for r in results.trials}
    # its worker died: Ray ran the task again (max_retries=1) in another worker; the driver saw one attempt
    assert len(starts["clip_eps=0.1 seed 1"]) == 2 and len(set(starts["clip_eps=0.1 seed 1"])) == 2
    assert by_id[specs[1].trial_id]["attempts"] == 1
    # it raised: Ray does not retry an exception, the driver does, and says why the first attempt failed
    assert len(starts["clip_eps=0.2 seed 0"]) == 2 and by_id[specs[2].trial_id]["attempts"] == 2
    [lost] = [outcome for *_, trial_id, outcome in seen if isinstance(outcome, Lost)]
    assert "RuntimeError: the trial function raised on its first attempt" in lost.reason and not lost.shared
    assert len(starts["clip_eps=0.1 seed 0"]) == len(starts["clip_eps=0.2 seed 1"]) == 1  # the others ran once
    # results came back one at a time as trials ended, each written before the next one was waited for
    finished_before = [sum(isinstance(outcome, dict) for *_, outcome in seen[:i]) for i in range(len(seen))]
    assert [written for written, *_ in seen] == finished_before and len(seen) == 5  # 4 trials + 1 raised
    assert seen[0][1] >= 1  # the first came back while others were still running


def test_ray_started_here_when_no_address_is_given(cluster, reference, tmp_path, monkeypatch):
    """``address=None`` starts a Ray instance in this process for the call, and stops it after, even while
    a cluster started with ``ray start`` runs on this machine (RAY_TMPDIR: where Ray looks for one)."""
    monkeypatch.setenv("RAY_TMPDIR", str(cluster.base))
    assert (cluster.base / "ray" / "ray_current_cluster").is_file()  # what ray.init() would connect to
    monkeypatch.setattr(backends, "RayBackend", _ray_backend_running(sweep_helpers.noting_the_ray_node(run_trial)))
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=tmp_path / "here", backend="ray", workers=2,
                       progress=False, total_steps=STEPS)
    _same_numbers(results, reference)
    assert not ray.is_initialized()
    nodes = {r.data["ray_node"] for r in results.trials}
    assert len(nodes) == 1 and not nodes & cluster.node_ids  # one node, this process's: not the cluster
