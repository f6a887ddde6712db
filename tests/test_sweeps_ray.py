"""``pg.sweep(backend="ray")`` on a real Ray cluster of two nodes started on this machine for the module.

The cluster (a head and a worker node, one CPU each, on 127.0.0.1) is started with the venv's ``ray``
CLI and Ray 2.60's token authentication, and stopped by killing exactly the processes it started: every
process in the session of each ``ray start`` (its daemons, and the workers its raylets start in process
groups of their own). ``ray stop`` would kill every Ray process of this user on the machine, a
developer's own cluster included. Skipped only when Ray is not installed (``make test`` installs the
``scale`` extra). About a minute on an idle machine: most of it is Ray starting processes.

Built to start on a busy 2-core machine (issue 25). Ray 2.60 gives a starting node two limits that no
setting changes: the raylet aborts if the dashboard agent it starts (a Python process) has not written
its port file within 15 s (raylet.err: "Check failed ... Timed out waiting for file
.../metrics_agent_port_<node>"), and ``ray start`` gives up 30 s after starting the raylet ("The
current node timed out during startup"). At a load average of 10-13 on 2 cores the agent took 23-28 s,
two thirds of it importing jsonschema, which builds an Earley parser for IRIs at import whenever
rfc3987-syntax is installed (Jupyter's jsonschema[format-nongpl] installs it; Ray never checks formats).
So the cluster's processes (and the Ray started by ``backend="ray"`` in the second test) get a
PYTHONPATH entry whose ``rfc3987_syntax`` fails to import, as if not installed; a node is started alone
(the worker node after the head has started), with no autoscaler monitor, log monitor, dashboard or
usage stats and a 100 MiB object store; the waits that Ray lets us set (its GCS, worker-registration
and Ray client timeouts) and the test's own waits get one budget, ``PGCOURSE_RAY_START_TIMEOUT`` seconds
(600), and a node that still fails is started again (3 tries in all, each in a fresh session). If it
never starts, the error names the node and says, per try, which of its processes were running, what
``ray start`` said and the tail of each of its error logs.
"""
from __future__ import annotations

import functools
import os
import re
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
from pgcourse.course.sweeps import RayBackend, expand  # noqa: E402
from pgcourse.course.sweeps.backends import Lost  # noqa: E402
from pgcourse.course.sweeps.trial import deterministic_part, run_trial  # noqa: E402
# Ray reads its authentication settings when imported; its own tests re-read them this way (Ray is pinned).
from ray._private.authentication_test_utils import reset_auth_token_state  # noqa: E402

# The cluster's workers cannot import tests/: the helpers travel by value (cloudpickle), through the Ray client too.
ray.cloudpickle.register_pickle_by_value(sweep_helpers)

GRID = {"clip_eps": [0.1, 0.2]}
STEPS = 1024
RAY_CLI = Path(sys.executable).parent / "ray"
START_TIMEOUT = float(os.environ.get("PGCOURSE_RAY_START_TIMEOUT", "600"))  # seconds, for the whole cluster
NODE_TRIES = 3
RAY_BOILERPLATE = re.compile(r" An unexpected system state has occurred\..*?work with you to fix it\.")  # in raylet.err
# Both nodes: one CPU, a small object store (the trials' records are small; Ray's minimum is 75 MiB), no
# log monitor (log_to_driver=False) and no usage stats.
NODE_OPTIONS = ["--node-ip-address=127.0.0.1", "--num-cpus=1", f"--object-store-memory={100 * 2**20}",
                "--include-log-monitor=false", "--disable-usage-stats"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _without_iri_grammar(base: Path) -> str:
    """A PYTHONPATH that makes ``import rfc3987_syntax`` fail (jsonschema then leaves out its IRI formats,
    as when the package is not installed), followed by this process's own PYTHONPATH."""
    shim = base / "py"
    shim.mkdir()
    (shim / "rfc3987_syntax.py").write_text('raise ImportError("left out of the Ray test cluster: it costs every '
                                            'Ray process ~2 s of CPU at import (tests/test_sweeps_ray.py)")\n')
    return os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every live (not zombie) process: pid -> (session id, parent pid, command line or [name])."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # it ended while we looked
            continue
        state, ppid, _pgid, sid = fields.split()[:4]
        if state != "Z":
            table[int(stat.parent.name)] = (int(sid), int(ppid), command or f"[{name}]")
    return table


def _in_sessions(sessions) -> dict[int, str]:
    """The live processes of these sessions (each ``ray start`` runs in a session of its own): pid -> command."""
    return {pid: command for pid, (sid, _, command) in _processes().items() if sid in set(sessions)}


def _short(command: str) -> str:
    """``raylet``, ``gcs_server``, ``dashboard/agent.py``, ``-m ray.util.client.server``, ``ray::DashboardAgent``."""
    words = command.split()
    if not words:
        return "?"
    if Path(words[0]).name.startswith("python") and len(words) > 1:
        if words[1] == "-m" and len(words) > 2:
            return f"-m {words[2]}"
        if Path(words[1]).name == "ray" and len(words) > 2:  # the CLI itself
            return f"ray {words[2]}"
        return "/".join(Path(words[1]).parts[-2:])
    return Path(words[0]).name


def _kill_sessions(sessions, timeout: float = 30.0) -> dict[int, str]:
    """SIGKILL every process of these sessions until none is left (or ``timeout``); returns what is left."""
    deadline = time.monotonic() + timeout
    while True:
        members = _in_sessions(sessions)
        if not members or time.monotonic() > deadline:
            return members
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _log_tails(logs: Path, since: float, lines: int = 4) -> list[str]:
    """The first and last lines of each error log written since ``since``, Ray's stack traces left out."""
    tails = []
    for path in sorted(logs.glob("*.err")) if logs.is_dir() else []:
        try:
            if path.stat().st_mtime < since:
                continue
            text = [RAY_BOILERPLATE.sub("", line)[:500] for line in path.read_text(errors="replace").splitlines()
                    if line.strip() and not line.lstrip().startswith(("/", "*** ", "[state-dump]"))]
        except OSError:
            continue
        if text:
            shown = text if len(text) <= 2 * lines else [*text[:lines], "...", *text[-lines:]]
            tails.append(f"  {path.name}:\n" + "\n".join(f"    {line}" for line in shown))
            if path.name.startswith("raylet") and "Timed out waiting for file" in text[0] and "agent" in text[0]:
                tails[-1] += ("\n    (the raylet stopped waiting for its dashboard agent: Ray 2.60 allows it 15 s, "
                              "which no setting changes)")
    return tails


def _start_node(what: str, arguments, env: dict[str, str], base: Path, sessions: list[int], deadline: float) -> None:
    """``ray start <arguments()>`` until it succeeds (up to NODE_TRIES times, each in a session of its own and
    with fresh ports from ``arguments``), killing what a failed try left; fails naming what did not start."""
    failures, first = [], time.monotonic()
    for attempt in range(1, NODE_TRIES + 1):
        began, started = time.time(), time.monotonic()
        process = subprocess.Popen([str(RAY_CLI), "start", *arguments(), *NODE_OPTIONS], env=env, cwd=base,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        sessions.append(process.pid)
        try:
            output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            output = None
        if output is not None and process.returncode == 0:
            print(f"{what}: started in {time.monotonic() - started:.0f} s (try {attempt}) in {base}, load average "
                  f"{os.getloadavg()[0]:.1f}")  # shown with -rA or -s
            return
        running = sorted({_short(command) for command in _in_sessions([process.pid]).values()})
        left = _kill_sessions([process.pid])
        if output is None:  # still running at the deadline: its pipe closes once its session is killed
            output = process.communicate()[0] + f"\n(still starting after {time.monotonic() - started:.0f} s)"
        said = [line for line in output.strip().splitlines() if line.strip()][-3:]
        failures.append(
            f"try {attempt} ({time.monotonic() - started:.0f} s, exit status {process.returncode}); running when "
            f"it stopped: {', '.join(running) or 'nothing'}\n  ray start said:\n"
            + "\n".join(f"    {line[:400]}" for line in said) + "\n"
            + "\n".join(_log_tails(base / "ray" / "session_latest" / "logs", began) or ["  (no error logs)"]))
        assert not left, f"{what}: processes of a failed start survived SIGKILL: {left}"
        sessions.remove(process.pid)  # ended: its number may be reused by someone else's session
        print(f"{what}: try {attempt} failed:\n{failures[-1]}")
        if time.monotonic() >= deadline:
            break
    pytest.fail(f"{what} did not start: {len(failures)} tries in {time.monotonic() - first:.0f} s (the cluster may "
                f"take PGCOURSE_RAY_START_TIMEOUT={START_TIMEOUT:.0f} s in all), on a machine at load average "
                f"{os.getloadavg()[0]:.1f} with {os.cpu_count()} CPUs\n\n" + "\n\n".join(failures), pytrace=False)


class Cluster:
    def __init__(self, base: Path, client_port: int, pythonpath: str, sessions: list[int]):
        self.base = base  # the head's temp dir is base/ray: where `ray start` puts it when RAY_TMPDIR=base
        self.address = f"ray://127.0.0.1:{client_port}"
        self.pythonpath = pythonpath  # what the cluster's processes run with (the second test's Ray too)
        self.sessions = sessions  # of each `ray start`: every process of the cluster is in one of them
        self.node_ids: set[str] = set()


@pytest.fixture(scope="module")
def cluster():
    assert RAY_CLI.exists(), f"{RAY_CLI} not found although ray imports"
    deadline = time.monotonic() + START_TIMEOUT
    base = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    budget = str(int(START_TIMEOUT))
    # GRPC_POLL_STRATEGY=poll: under gVisor (this sandbox; some CI runners) gRPC's default epoll poller fails
    # in the Ray client's per-connection server ("epoll_wait error: Bad file descriptor") and every
    # ray:// connection times out; poll works everywhere.
    settings = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "GRPC_POLL_STRATEGY": "poll",
                # this process's Ray client: how long one try to connect to the cluster may wait (5 s, then 10 s ...)
                "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "30", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "120"}
    pythonpath = _without_iri_grammar(base)
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | settings | {
        "PYTHONPATH": pythonpath, "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_gcs_server_port_wait_time_s": budget,  # the GCS's port file, and each node's first GCS connection
        "RAY_worker_register_timeout_seconds": budget,  # a worker process's start, until it registers
        "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": budget}  # the Ray client's per-connection server's start
    saved = {name: os.environ.get(name) for name in (*settings, "RAY_ADDRESS")}
    sessions: list[int] = []
    ports: dict[str, int] = {}

    def head():
        ports.update(gcs=_free_port(), client=_free_port(), dashboard=_free_port())
        # --dashboard-port: the API server runs even without the dashboard, by default on 8265; --no-monitor:
        # no autoscaler (the cluster is fixed)
        return ["--head", f"--port={ports['gcs']}", f"--ray-client-server-port={ports['client']}",
                "--include-dashboard=false", f"--dashboard-port={ports['dashboard']}", "--no-monitor",
                f"--temp-dir={base / 'ray'}"]

    try:
        _start_node("the head node (ray start --head)", head, env, base, sessions, deadline)
        _start_node("the worker node (ray start --address)", lambda: [f"--address=127.0.0.1:{ports['gcs']}"], env,
                    base, sessions, deadline)
        for name in saved:
            os.environ.pop(name, None)
        os.environ.update(settings)  # this process is the driver: it needs the token too
        reset_auth_token_state()
        result = Cluster(base, ports["client"], pythonpath, sessions)
        ray.init(address=result.address, log_to_driver=False)
        try:
            while True:  # (a node of a failed try that registered is marked dead only after a while)
                result.node_ids = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
                if len(result.node_ids) == 2 and ray.cluster_resources().get("CPU") == 2:
                    break
                assert time.monotonic() < deadline, (f"the cluster has {len(result.node_ids)} live nodes and "
                                                     f"{ray.cluster_resources()} after {budget} s")
                time.sleep(0.5)
        finally:
            ray.shutdown()
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
        left = _kill_sessions(sessions)
        # anything else still using the cluster's directory (nothing should: every process is in a session above)
        strays = {pid: command for pid, (_, _, command) in _processes().items()
                  if str(base) in command and pid != os.getpid()}
        shutil.rmtree(base, ignore_errors=True)
        assert not left and not strays, f"Ray processes left running: {left | strays}"


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
    """``address=None`` starts a Ray instance in this process for the call, and stops it after (every process
    of it), even while a cluster started with ``ray start`` runs on this machine (RAY_TMPDIR: where Ray
    looks for one; this Ray's session goes there too)."""
    monkeypatch.setenv("RAY_TMPDIR", str(cluster.base))
    monkeypatch.setenv("PYTHONPATH", cluster.pythonpath)  # its processes start as quickly as the cluster's
    assert (cluster.base / "ray" / "ray_current_cluster").is_file()  # what ray.init() would connect to
    monkeypatch.setattr(backends, "RayBackend", _ray_backend_running(sweep_helpers.noting_the_ray_node(run_trial)))
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=tmp_path / "here", backend="ray", workers=2,
                       progress=False, total_steps=STEPS)
    _same_numbers(results, reference)
    assert not ray.is_initialized()
    nodes = {r.data["ray_node"] for r in results.trials}
    assert len(nodes) == 1 and not nodes & cluster.node_ids  # one node, this process's: not the cluster
    # ray.shutdown() stopped what ray.init() started: nothing outside the cluster's sessions uses its directory
    left = {pid: command for pid, (sid, _, command) in _processes().items()
            if str(cluster.base) in command and sid not in cluster.sessions and pid != os.getpid()}
    assert not left, f"the Ray started for the call left processes running: {left}"
