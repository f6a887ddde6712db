"""``device="auto"``: the CPU for the course's workloads, GPU or not; ``PGCOURSE_DEVICE`` forces a device for
every ``"auto"``; an explicit device wins; a device asked for and absent, or a name that is no device, is an
error that says which (issue 32: on a CUDA machine ``auto`` picked CUDA, which made the lessons crash where
they mix a run's policy with their own CPU tensors, gave other numbers than the CPU, and was 2.6x slower).
"""
from __future__ import annotations

import json

import pytest
import torch

import pgcourse as pg
from conftest import TINY_A2C
from fake_cuda import fake_cuda, on_fake_cuda, unusable_reason
from pgcourse.rl import devices


@pytest.fixture(autouse=True)
def no_forced_device(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV_VAR, raising=False)
    monkeypatch.setattr(devices, "_notice_shown", False)


def _tiny(device="auto", **changes):
    return pg.train("a2c", "CartPole-v1", seed=0, device=device, progress=False, **{**TINY_A2C, **changes})


def test_auto_is_the_cpu_without_a_gpu():
    choice = pg.choose_device("auto")
    assert choice.device == torch.device("cpu") and choice.reason == devices.AUTO_CPU_REASON
    run = _tiny()
    assert run.device == torch.device("cpu") and run.device_reason == devices.AUTO_CPU_REASON


def test_auto_is_the_cpu_on_a_gpu_machine_and_one_line_says_so_once(capsys):
    with fake_cuda():
        run = _tiny()
        _tiny()
        assert run.device == torch.device("cpu") and not any(on_fake_cuda(p) for p in run.policy.parameters())
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1, notice  # once per process, not once per run
    assert "CUDA is available" in notice[0] and "PGCOURSE_DEVICE=cuda" in notice[0] and "device='cuda'" in notice[0]


def test_auto_on_a_gpu_machine_gives_the_cpu_run_bit_for_bit():
    """The point for a learner in Colab's GPU runtime: the same numbers, so the same verdicts."""
    plain = _tiny()
    with fake_cuda():
        on_gpu_machine = _tiny()
    for table in ("episodes", "updates"):
        for column in getattr(plain.history, table).fields:
            if column != "wall_time":
                a, b = getattr(plain.history, table)[column], getattr(on_gpu_machine.history, table)[column]
                assert a.tobytes() == b.tobytes(), f"{table}.{column} differs"


@pytest.mark.skipif(unusable_reason() is not None, reason=str(unusable_reason()))
def test_the_environment_variable_forces_every_auto_and_an_explicit_device_wins(monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV_VAR, "cuda")
    with fake_cuda():
        forced = _tiny()
        explicit = _tiny(device="cpu")
    assert forced.device.type == "cuda" and forced.device_reason == "PGCOURSE_DEVICE=cuda"
    assert explicit.device == torch.device("cpu") and explicit.device_reason == "asked for: device='cpu'"
    monkeypatch.setenv(devices.DEVICE_ENV_VAR, "auto")  # "auto" (or empty) means the rule itself
    assert pg.choose_device("auto").reason == devices.AUTO_CPU_REASON


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CUDA", "cuda:-1", " cpu", "cuda:01", "cuda:１", "cpu:0"])
def test_a_name_that_is_no_device_is_refused_naming_what_exists(name, monkeypatch):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"):
        pg.choose_device(name)
    with pytest.raises(pg.ConfigError, match="device"):
        _tiny(device=name)
    monkeypatch.setenv(devices.DEVICE_ENV_VAR, name)
    if name.strip() != "cpu":  # the variable's value is stripped: " cpu" is a valid setting there
        with pytest.raises(ValueError, match="PGCOURSE_DEVICE"):
            _tiny()


@pytest.mark.parametrize("name, missing", [("cuda", "CUDA is not available"), ("cuda:0", "CUDA is not available"),
                                           ("mps", "MPS is not available")])
def test_a_device_asked_for_and_absent_is_an_error_not_a_fallback(name, missing, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=missing):
        _tiny(device=name)
    monkeypatch.setenv(devices.DEVICE_ENV_VAR, name)
    with pytest.raises(ValueError, match=f"PGCOURSE_DEVICE={name}.*{missing}.*unset PGCOURSE_DEVICE"):
        _tiny()


def test_a_gpu_index_past_the_machine_is_refused():
    with fake_cuda(), pytest.raises(ValueError, match="GPU 3.*has 1"):
        pg.choose_device("cuda:3")


def test_mps_is_never_chosen_unless_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pg.choose_device("auto").device == torch.device("cpu")
    assert pg.choose_device("mps").device == torch.device("mps")


def test_the_device_and_its_reason_are_saved_with_the_run(tmp_path):
    run = _tiny()
    run.save(tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["device"] == "cpu" and meta["device_reason"] == devices.AUTO_CPU_REASON
    loaded = pg.load(tmp_path / "run")
    assert loaded.device == torch.device("cpu")
    assert "trained on cpu" in loaded.device_reason and "asked for: device='cpu'" in loaded.device_reason


def test_the_language_model_loop_follows_the_same_rule():
    import importlib

    finetune = importlib.import_module("pgcourse.lm.finetune")  # (pgcourse.lm.finetune is also a function)
    assert finetune.resolve_device is devices.resolve_device
    with fake_cuda():
        assert finetune.resolve_device(finetune.FinetuneConfig().device) == torch.device("cpu")


def test_the_cli_names_a_bad_device_in_one_line(capsys):
    from pgcourse.cli import main

    assert main(["train", "ppo", "--env", "CartPole-v1", "--device", "gpu", "--steps", "64", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pgcourse train: error: --device: device='gpu' is invalid"), err
    assert "Traceback" not in "\n".join(err)


def test_the_cli_blames_the_environment_variable_not_a_device_flag_it_was_not_given(capsys, monkeypatch):
    from pgcourse.cli import main

    monkeypatch.setenv(devices.DEVICE_ENV_VAR, "gpu")
    assert main(["train", "ppo", "--env", "CartPole-v1", "--steps", "64", "--quiet"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("pgcourse train: error: the environment variable PGCOURSE_DEVICE='gpu' is invalid"), last


@pytest.mark.parametrize("name", ["cuda:x", "cuda:01", "gpu", "mps"])
def test_the_language_model_config_refuses_what_is_no_device_for_it(name):
    import importlib

    finetune = importlib.import_module("pgcourse.lm.finetune")
    with pytest.raises(pg.ConfigError, match="device"):
        finetune.FinetuneConfig(device=name)


# -- env_backend="torch": CUDA past the crossover measured on this machine (issue 33, item 4) ---------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.CACHE_ENV_VAR, str(tmp_path))
    return tmp_path


def _torch_tiny(num_envs, device="auto"):
    return pg.train("ppo", "CartPole-v1", seed=0, device=device, progress=False, env_backend="torch",
                    num_envs=num_envs, n_steps=16, num_minibatches=1, update_epochs=1, total_steps=32 * num_envs)


def test_auto_keeps_the_cpu_for_a_torch_env_without_a_measured_crossover_and_says_why(cache, capsys):
    with fake_cuda():
        run = _torch_tiny(4)
    assert run.device == torch.device("cpu")
    assert "no crossover measured on this machine (pgcourse bench device measures it)" in run.device_reason
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "CUDA is available" in notice[0] and "pgcourse bench device measures" in notice[0]


@pytest.mark.skipif(unusable_reason() is not None, reason=str(unusable_reason()))
def test_auto_picks_cuda_for_a_torch_env_at_or_past_the_measured_crossover_only(cache):
    with fake_cuda():
        devices.write_crossover(8, {"widths": [4, 8, 16]})
        below, at = _torch_tiny(4), _torch_tiny(8)
        numpy_run = _tiny()  # a numpy env never goes to the GPU, whatever the crossover
    assert below.device == torch.device("cpu") and "num_envs=4 is below the crossover 8 envs" in below.device_reason
    assert at.device.type == "cuda" and "num_envs=8 is at or past the crossover 8 envs" in at.device_reason
    assert numpy_run.device == torch.device("cpu") and numpy_run.device_reason == devices.AUTO_CPU_REASON


def test_a_crossover_from_another_gpu_or_a_never_faster_one_keeps_the_cpu(cache):
    with fake_cuda():
        path = devices.write_crossover(1, {"widths": [8]})
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "gpu": "NVIDIA H100 80GB HBM3"}))
        other = pg.choose_device("auto", env_backend="torch", num_envs=4096)
        devices.write_crossover(None, {"widths": [8, 64, 512]})
        never = pg.choose_device("auto", env_backend="torch", num_envs=4096)
        path.write_text("{not json")
        broken = pg.choose_device("auto", env_backend="torch", num_envs=4096)
    assert other.device == torch.device("cpu") and "measured on 'NVIDIA H100 80GB HBM3'" in other.reason
    assert never.device == torch.device("cpu") and "slower than the CPU at every width up to 512" in never.reason
    assert broken.device == torch.device("cpu") and "cannot be read" in broken.reason


def test_without_a_gpu_a_torch_env_stays_on_the_cpu_whatever_the_cache(cache, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (cache / "device_crossover.json").write_text(json.dumps({"format": devices.CROSSOVER_FORMAT, "crossover_envs": 1}))
    choice = pg.choose_device("auto", env_backend="torch", num_envs=4096)
    assert choice.device == torch.device("cpu") and choice.reason == devices.AUTO_CPU_REASON


@pytest.mark.skipif(unusable_reason() is not None, reason=str(unusable_reason()))
def test_auto_picks_cuda_only_for_the_workload_class_the_crossover_measured(cache):
    """Issue 44, item 6: a crossover measured on PPO with a minibatch count was applied to A2C and to PPO with the
    course's minibatch size (whose gradient steps grow with the width), never measured. Those stay on the CPU, and
    the reason says which measurement decided and for what."""
    with fake_cuda():
        devices.write_crossover(8, {"widths": [4, 8, 16]})
        counted = _torch_tiny(8)
        sized = pg.train("ppo", "CartPole-v1", seed=0, progress=False, env_backend="torch", num_envs=8, n_steps=16,
                         minibatch_size=64, update_epochs=1, total_steps=256)
        a2c = pg.train("a2c", "CartPole-v1", seed=0, progress=False, env_backend="torch", num_envs=8, n_steps=16,
                       total_steps=256)
    assert counted.device.type == "cuda" and "for ppo with a minibatch count" in counted.device_reason
    assert str(cache) in counted.device_reason and " on 20" in counted.device_reason  # the file and its date
    for run, what in ((sized, "ppo with a minibatch size"), (a2c, "a2c with a minibatch size")):
        assert run.device == torch.device("cpu"), run.device_reason
        assert f"this run is {what}, not the workload the crossover 8 envs" in run.device_reason, run.device_reason
