"""``pgcourse bench device``: the crossover rule, the report on a machine without CUDA (nothing written) and with a
GPU (the fake one of tests/fake_cuda.py: the file written is what ``device="auto"`` reads)."""
from __future__ import annotations

import json

import pytest
import torch

import pgcourse as pg
from fake_cuda import fake_cuda, unusable_reason
from pgcourse.rl import devices
from pgcourse.bench import device as bench_device
from pgcourse.cli import main as cli_main


@pytest.mark.parametrize("cpu, gpu, expected", [
    ([10, 10, 10, 10], [1, 5, 20, 30], 512),   # faster from 512 on
    ([10, 10, 10, 10], [11, 12, 20, 30], 8),   # faster everywhere
    ([10, 10, 10, 10], [1, 20, 5, 30], 4096),  # faster at 64 but not at 512: only the widest run of wins counts
    ([10, 10, 10, 10], [1, 2, 3, 10], None),   # never faster (equal is not faster)
])
def test_the_crossover_is_where_the_gpu_starts_winning_for_good(cpu, gpu, expected):
    assert bench_device.crossover([8, 64, 512, 4096], cpu, gpu) == expected


def test_the_crossover_refuses_unsorted_or_ragged_measurements():
    with pytest.raises(ValueError, match="ascending with one rate each"):
        bench_device.crossover([64, 8], [1, 1], [2, 2])
    with pytest.raises(ValueError, match="ascending with one rate each"):
        bench_device.crossover([8, 64], [1], [2, 2])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.delenv(devices.DEVICE_ENV_VAR, raising=False)
    return tmp_path


def test_without_a_gpu_it_measures_the_cpu_says_so_and_writes_nothing(cache, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli_main(["bench", "device", "--widths", "2", "4"]) == 0
    out = capsys.readouterr().out
    assert "no GPU on this machine" in out and "nothing written" in out
    assert [line.split()[0] for line in out.splitlines()[2:4]] == ["2", "4"]  # one row per width
    assert not (cache / "device_crossover.json").exists()


@pytest.mark.skipif(unusable_reason() is not None, reason=str(unusable_reason()))
def test_with_a_gpu_the_crossover_is_written_for_auto_to_read(cache, capsys, monkeypatch):
    measured = {2: (100.0, 50.0), 4: (100.0, 150.0)}  # width -> (cpu, gpu) steps/s: the GPU wins from 4 envs

    def timed(device, num_envs, updates):
        rate = measured[num_envs][device.startswith("cuda")]
        return bench_device.DeviceTiming(device, num_envs, int(rate), 1.0, 1.0)
    monkeypatch.setattr(bench_device, "time_ppo", timed)
    with fake_cuda():
        assert bench_device.main(widths=[2, 4]) == 0
        record = json.loads((cache / "device_crossover.json").read_text())
        assert record["crossover_envs"] == 4 and record["gpu"] == torch.cuda.get_device_name(0)
        measured = dict(env_backend="torch", algo="ppo", num_minibatches=4)  # the class bench device measures
        assert pg.choose_device("auto", num_envs=4, **measured).device.type == "cuda"
        assert pg.choose_device("auto", num_envs=2, **measured).device == torch.device("cpu")
        assert record["workload"] == {"algo": "ppo", "minibatches": "count"}
    assert "crossover: 4 envs" in capsys.readouterr().out


def test_the_timed_workload_trains_on_the_torch_env():
    timing = bench_device.time_ppo("cpu", 2, updates=1)
    assert timing.env_steps > 0 and timing.steps_per_second > 0 and timing.cpu_seconds > 0


# -- pgcourse bench scaling (issue 44, item 8) ----------------------------------------------------------------------
def _counted_work(monkeypatch):
    """The scaling bench with its three workloads recorded (tiny real runs: the numbers are never asserted)."""
    from pgcourse.bench import scaling
    calls = []
    for name in ("course_ppo", "plain_ppo", "agents_ppo"):
        original = getattr(scaling, name)

        def recording(*args, _original=original, _name=name):
            calls.append((_name, *args[1:]))
            return _original(*args)
        monkeypatch.setattr(scaling, name, recording)
    monkeypatch.setattr(scaling, "AGENT_COUNTS", (1, 2))
    monkeypatch.setattr(scaling, "AGENT_ENVS", 4)
    return scaling, calls


def test_the_scaling_bench_times_both_loops_at_each_width_and_writes_what_ran_where(monkeypatch, tmp_path, capsys):
    """On the device present (here the CPU): the course's loop and the plain loop at each width, each warmed up
    once and timed once, the agents' batches, and a JSON naming device, torch version and date. Work is counted,
    never timed against a goal here (speed lives in the benchmark's report)."""
    scaling, calls = _counted_work(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    json_path = tmp_path / "scaling.json"
    assert cli_main(["bench", "scaling", "--widths", "16", "8", "--quick", "--json", str(json_path)]) == 0
    assert calls == [("course_ppo", 8, 2)] * 2 + [("plain_ppo", 8, 2)] * 2 + [("course_ppo", 16, 2)] * 2 \
        + [("plain_ppo", 16, 2)] * 2 + [("agents_ppo", 1, 4, 2)] * 2 + [("agents_ppo", 2, 4, 2)] * 2
    record = json.loads(json_path.read_text())
    assert record["device"] == "cpu" and record["torch"] == torch.__version__ and record["date"][:4].isdigit()
    assert [row["num_envs"] for row in record["widths"]] == [8, 16]
    for row in record["widths"]:  # both loops did the same work: 2 updates of 8 (16) envs x 32 steps
        assert row["course"]["env_steps"] == row["plain"]["env_steps"] == 2 * row["num_envs"] * scaling.N_STEPS
    for row, agents in zip(record["agents"], (1, 2)):  # the updates the agents took, each of agents x 4 x 32 steps
        assert row["env_steps"] >= 2 * agents * 4 * scaling.N_STEPS and row["env_steps"] % (4 * scaling.N_STEPS) == 0
    out = capsys.readouterr().out
    assert "course / plain" in out and "2 agents x 4 torch envs (pg.train_many)" in out and "wrote" in out


@pytest.mark.skipif(unusable_reason() is not None, reason=str(unusable_reason()))
def test_on_a_gpu_the_scaling_bench_measures_there(monkeypatch, tmp_path):
    """With CUDA present (the fake GPU) every workload runs on it and the record names the GPU."""
    scaling, calls = _counted_work(monkeypatch)
    with fake_cuda():
        record = scaling.measure([8], agent_counts=(2,), agent_envs=4, updates=1, log=lambda line: None)
    assert record["device"] == "cuda" and record["device_name"] == "fake cuda (CPU)"
    assert {str(call[0]) for call in calls} == {"course_ppo", "plain_ppo", "agents_ppo"}
