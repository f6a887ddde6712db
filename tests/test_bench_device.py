"""``pgcourse bench device``: the crossover rule, the report on a machine without CUDA (nothing written) and with a
GPU (the fake one of tests/fake_cuda.py: the file written is what ``device="auto"`` reads)."""
from __future__ import annotations

import json

import pytest
import torch

import pgcourse as pg
from fake_cuda import fake_cuda, unusable_reason
from pgcourse import devices
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
        assert pg.choose_device("auto", env_backend="torch", num_envs=4).device.type == "cuda"
        assert pg.choose_device("auto", env_backend="torch", num_envs=2).device == torch.device("cpu")
    assert "crossover: 4 envs" in capsys.readouterr().out


def test_the_timed_workload_trains_on_the_torch_env():
    timing = bench_device.time_ppo("cpu", 2, updates=1)
    assert timing.env_steps > 0 and timing.steps_per_second > 0 and timing.cpu_seconds > 0
