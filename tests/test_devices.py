"""Every device: no float64 on a device without it (MPS), and the accelerators' generators in checkpoints.

No GPU is needed: a device without float64 is played by the CPU with ``pgcourse.diagnostics.supports_float64``
patched to say no, under a guard that raises on any float64 tensor on the CPU; CUDA's and MPS's
generators are played by fakes of ``torch.cuda.*`` / ``torch.mps.*`` that a real checkpoint saves and
loads.
"""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import pgcourse as pg
from conftest import EVERY_LOOP_SHORT, SHORT_CARTPOLE, SHORT_PENDULUM, TINY_A2C, TINY_PPO_CONTINUOUS, TINY_PPO_DISCRETE
from pgcourse.rl import diagnostics
from pgcourse.rl.algorithms import checkpoint
from pgcourse.rl.run import bounds_on_device


# ---------------------------------------------------------------------------------------------
# the rule: float64 where the device has it
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device, expected", [("cpu", torch.float64), ("cuda", torch.float64),
                                              (torch.device("cuda", 1), torch.float64), ("mps", torch.float32),
                                              (torch.device("mps"), torch.float32)])
def test_accumulation_dtype_is_float64_except_on_mps(device, expected):
    assert diagnostics.accumulation_dtype(device) == expected
    assert diagnostics.supports_float64(device) == (expected == torch.float64)


def test_diagnostics_on_cpu_are_the_float64_numbers_of_before():
    """Cached lesson results depend on these: on CPU they are computed exactly as before (``.double()``)."""
    g = torch.Generator().manual_seed(0)
    values, returns = torch.randn(300, generator=g), 3.0 + torch.randn(300, generator=g)  # float32, [B]
    v, r = values.double(), returns.double()
    assert diagnostics.explained_variance(values, returns) == float(1.0 - (r - v).var(unbiased=False)
                                                                    / r.var(unbiased=False))
    assert diagnostics.relative_value_error(values, returns) == float((r - v).pow(2).mean().sqrt() / r.abs().mean())
    grads = torch.randn(5, 7, generator=g)  # [K, P]
    assert diagnostics.gradient_variance(grads) == float(grads.double().var(dim=0, unbiased=True).sum())


def test_diagnostics_fall_back_to_float32_on_a_device_without_float64(monkeypatch):
    monkeypatch.setattr(diagnostics, "supports_float64", lambda device: False)
    g = torch.Generator().manual_seed(1)
    values, returns = torch.randn(300, generator=g), 3.0 + torch.randn(300, generator=g)  # [B]
    grads = torch.randn(5, 7, generator=g)  # [K, P]
    with NoFloat64On("cpu"):
        ev = diagnostics.explained_variance(values, returns)
        error = diagnostics.relative_value_error(values, returns)
        variance = diagnostics.gradient_variance(grads)
    monkeypatch.undo()
    assert ev == pytest.approx(diagnostics.explained_variance(values, returns), rel=1e-5)
    assert error == pytest.approx(diagnostics.relative_value_error(values, returns), rel=1e-5)
    assert variance == pytest.approx(diagnostics.gradient_variance(grads), rel=1e-5)


def test_box_bounds_keep_their_dtype_where_float64_exists_and_become_float32_where_not(monkeypatch):
    low32, low64 = np.array([-2.0, 0.5], dtype=np.float32), np.array([-2.0, 0.5])
    assert bounds_on_device(low32, torch.device("cpu")).dtype == torch.float32
    assert bounds_on_device(low64, torch.device("cpu")).dtype == torch.float64
    monkeypatch.setattr(diagnostics, "supports_float64", lambda device: False)
    assert bounds_on_device(low64, torch.device("cpu")).dtype == torch.float32
    assert bounds_on_device(low32, torch.device("cpu")).dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# the guard, and training under it
# ---------------------------------------------------------------------------------------------
class Float64OnDevice(AssertionError):
    """A float64 tensor was asked for or made on the device the guard stands for."""


def _devices_of(flat: list) -> set[str]:
    """Device types of the tensors and ``torch.device``s in a flattened argument/output list."""
    found = {item.device.type for item in flat if isinstance(item, torch.Tensor)}
    return found | {item.type for item in flat if isinstance(item, torch.device)}


def _float64_outputs(output, device_type: str) -> bool:
    return any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 and t.device.type == device_type
               for t in tree_flatten(output)[0])


class _Float64Dispatch(TorchDispatchMode):
    """Aten-level half of :class:`NoFloat64On`: every op the dispatcher runs (autograd's backward and
    ops composed in C++ included) must not produce a float64 tensor on ``device_type``."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type = device_type

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        if _float64_outputs(output, self.device_type):
            raise Float64OnDevice(f"aten op {func} made a float64 tensor on {self.device_type}")
        return output


class NoFloat64On(TorchFunctionMode):
    """Raise :class:`Float64OnDevice` when a torch function or tensor method called from Python asks for
    float64 (``dtype=torch.float64``, ``.to(torch.float64)``, ``.double()``) on ``device_type`` (a tensor
    argument or ``device`` there, or none: a factory on the default device) or returns a float64 tensor
    there; and, through a :class:`TorchDispatchMode`, when any aten op produces one there."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type = device_type
        self._dispatch = _Float64Dispatch(device_type)

    def __enter__(self):
        self._dispatch.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._dispatch.__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat = tree_flatten((args, kwargs))[0]
        asked = any(item is torch.float64 for item in flat) or getattr(func, "__name__", "") == "double"
        devices = _devices_of(flat) or {torch.get_default_device().type}
        name = getattr(func, "__qualname__", repr(func))
        if asked and self.device_type in devices:
            raise Float64OnDevice(f"{name} asked for float64 on {self.device_type}")
        output = func(*args, **kwargs)
        if _float64_outputs(output, self.device_type):
            raise Float64OnDevice(f"{name} returned a float64 tensor on {self.device_type}")
        return output


@pytest.mark.parametrize("make", [lambda: torch.zeros(3).double(), lambda: torch.zeros(3, dtype=torch.float64),
                                  lambda: torch.zeros(3).to(torch.float64), lambda: torch.as_tensor(np.zeros(3)),
                                  lambda: torch.ones(3).sum(dtype=torch.float64),
                                  lambda: torch.zeros(3).var().item() + torch.tensor([1.0], dtype=torch.float64)],
                         ids=["double", "factory", "to", "from-numpy", "sum-dtype", "python-float-mixed"])
def test_the_guard_catches_float64_on_its_device(make):
    with NoFloat64On("cpu"), pytest.raises(Float64OnDevice):
        make()


def test_the_guard_lets_float32_and_other_devices_through():
    with NoFloat64On("cpu"):
        x = torch.randn(4, requires_grad=True)
        (x.exp() * 2).sum().backward()
        float(x.detach().var())
    with NoFloat64On("mps"):  # a float64 on the CPU is not on the guarded device
        torch.zeros(3).double()


class Float64Actions(gym.ActionWrapper):
    """Pendulum whose action space is a float64 Box (as a custom env may declare)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        self.action_space = gym.spaces.Box(space.low.astype(np.float64), space.high.astype(np.float64),
                                           dtype=np.float64)

    def action(self, action):
        return np.asarray(action, dtype=np.float32)


def make_float64_action_pendulum(**kwargs) -> gym.Env:
    return Float64Actions(gym.make(SHORT_PENDULUM, **kwargs))


FLOAT64_ACTION_PENDULUM = "pgcourse_test/PendulumFloat64Actions-v0"
if FLOAT64_ACTION_PENDULUM not in gym.registry:
    gym.register(id=FLOAT64_ACTION_PENDULUM, entry_point=make_float64_action_pendulum)

EVERY_LOOP = EVERY_LOOP_SHORT + [
    ("a2c", FLOAT64_ACTION_PENDULUM, dict(TINY_A2C, num_envs=2, total_steps=128)),
]


@pytest.mark.parametrize("algo, env_id, settings", EVERY_LOOP,
                         ids=[f"{a}-{e.split('/')[-1]}" for a, e, _ in EVERY_LOOP])
def test_training_asks_for_no_float64_on_a_device_without_it(algo, env_id, settings, monkeypatch):
    """Train every loop, discrete and continuous, as on a device without float64 (MPS), and fail at the
    first torch op that asks for or makes a float64 tensor there.

    How: ``diagnostics.supports_float64`` is patched so the CPU counts as lacking float64 (every use of
    :func:`~pgcourse.diagnostics.accumulation_dtype` then picks float32), and :class:`NoFloat64On` stands
    in for MPS's refusal. Training includes the evaluations during training and the final
    capture of the training state.

    What it catches: every float64 that a torch function or tensor method called from Python (the
    package, gymnasium, torch's own Python code) asks for or returns on the CPU, and every float64
    output of an aten op the dispatcher runs (the backward pass and ops composed in C++ included), on
    the code paths these short runs take; e.g. ``.double()`` in the diagnostics, a float64 action
    Box turned into a tensor on the device (``FLOAT64_ACTION_PENDULUM``).

    What it cannot catch:

    - code these runs do not reach: other settings (value clipping, KL early stop, traps, learners'
      functions), resuming, ``pgcourse.lm`` (its devices are cpu and cuda), the widgets and checks
      (CPU only), sweeps; a float64 that only a real MPS branch (``device.type == "mps"``) would make;
    - float64 outside torch (numpy arrays, Python floats): they never reach the device, as on MPS;
    - torch ops run in other threads or processes (the modes are thread-local): none in these loops;
    - MPS's other limits (ops it has not implemented, other kernels and random streams, float32's
      lower precision changing the numbers): only the float64 rule is checked.

    Because the CPU stands in for the device, a float64 tensor kept on the host (legal on a real MPS
    run) fails it too: stricter than needed, never weaker.
    """
    monkeypatch.setattr(diagnostics, "supports_float64", lambda device: False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. gymnasium's notes on the wrapped env's spaces
        with NoFloat64On("cpu"):
            run = pg.train(algo, env_id, seed=0, device="cpu", progress=False, eval_every=128, eval_episodes=1,
                           **settings)
    assert len(run.history.updates) >= 1


# ---------------------------------------------------------------------------------------------
# CUDA and MPS generators in checkpoints
# ---------------------------------------------------------------------------------------------
def _fake_state(seed: int, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (size,), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA "in use" with two GPUs whose generator states are fakes; ``set`` records what is put back."""
    saved = [_fake_state(1), _fake_state(2)]
    fake = {"get": lambda: [state.clone() for state in saved], "saved": saved, "set": [], "count": 2}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: fake["count"])
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: fake["get"]())
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: fake["set"].append(list(states)))
    return fake


@pytest.fixture
def fake_mps(monkeypatch):
    """MPS available, with a fake generator state; ``set`` records what is put back."""
    fake = {"saved": _fake_state(3), "set": []}
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda device="mps": fake["saved"].clone())
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda state, device="mps": fake["set"].append(state))
    return fake


def _train_save_and_resume(tmp_path):
    """A tiny CPU run saved with its training state, loaded back, and resumed for more steps."""
    folder = tmp_path / "run"
    pg.train("a2c", "CartPole-v1", seed=3, device="cpu", progress=False, **TINY_A2C).save(folder)
    saved_state = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same device: resuming says nothing
        resumed = pg.train("a2c", "CartPole-v1", resume=folder, device="cpu", total_steps=2 * TINY_A2C["total_steps"],
                           progress=False)
    return saved_state, resumed


def test_cuda_generators_round_trip_through_a_saved_checkpoint(tmp_path, fake_cuda):
    saved_state, resumed = _train_save_and_resume(tmp_path)
    assert saved_state["device"] == "cpu"
    assert len(saved_state["cuda_rng"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(saved_state["cuda_rng"], fake_cuda["saved"]))
    assert len(fake_cuda["set"]) == 1, "resuming puts the CUDA generators back once"
    assert all(torch.equal(a, b) for a, b in zip(fake_cuda["set"][0], fake_cuda["saved"]))
    assert resumed.history.status == "completed"


def test_mps_generator_round_trips_through_a_saved_checkpoint(tmp_path, fake_mps):
    saved_state, _ = _train_save_and_resume(tmp_path)
    assert torch.equal(saved_state["mps_rng"], fake_mps["saved"])
    assert len(fake_mps["set"]) == 1 and torch.equal(fake_mps["set"][0], fake_mps["saved"])


def test_no_accelerator_in_use_saves_no_accelerator_state(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)  # available, never used: not touched
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("would initialise CUDA"))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert checkpoint.accelerator_rng_states() == {"cuda_rng": None, "mps_rng": None}


def test_a_cuda_checkpoint_resumed_with_fewer_gpus_restores_those_it_has_and_says_so(fake_cuda):
    fake_cuda["count"] = 1
    state = {"device": "cuda:0", "cuda_rng": fake_cuda["saved"], "mps_rng": None}
    notes = checkpoint.restore_accelerator_rng_states(state, torch.device("cuda"))
    assert len(notes) == 1 and "2 GPU(s)" in notes[0] and "has 1" in notes[0]
    assert len(fake_cuda["set"]) == 1 and len(fake_cuda["set"][0]) == 1
    assert torch.equal(fake_cuda["set"][0][0], fake_cuda["saved"][0])


def test_a_cpu_checkpoint_resumed_on_cuda_loads_and_says_the_numbers_will_differ(fake_cuda):
    state = {"device": "cpu", "cuda_rng": None, "mps_rng": None}
    notes = checkpoint.restore_accelerator_rng_states(state, torch.device("cuda"))
    assert len(notes) == 1 and "trained on cpu and continues on cuda" in notes[0]
    assert fake_cuda["set"] == []  # nothing saved: the CUDA generators keep their fresh seed


def test_a_cuda_checkpoint_resumed_without_cuda_loads_and_says_the_numbers_will_differ(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("no CUDA here"))
    state = {"device": "cuda:0", "cuda_rng": [_fake_state(1)], "mps_rng": None}
    notes = checkpoint.restore_accelerator_rng_states(state, torch.device("cpu"))
    assert len(notes) == 1 and "trained on cuda and continues on cpu" in notes[0]


def test_an_older_checkpoint_resumes_on_cpu_silently_and_on_cuda_with_a_note(fake_cuda):
    older = {"torch_rng": torch.get_rng_state()}  # saved before the device and accelerator states were
    assert checkpoint.restore_accelerator_rng_states(older, torch.device("cpu")) == []
    notes = checkpoint.restore_accelerator_rng_states(older, torch.device("cuda"))
    assert len(notes) == 1 and "no CUDA generator state" in notes[0]
    assert fake_cuda["set"] == []


def test_resuming_on_another_device_warns(tmp_path, monkeypatch):
    """Through a real checkpoint: a state marked as trained on CUDA, resumed on this CPU, warns and trains on."""
    folder = tmp_path / "run"
    pg.train("a2c", "CartPole-v1", seed=3, device="cpu", progress=False, **TINY_A2C).save(folder)
    state = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=False)
    state["device"], state["cuda_rng"] = "cuda:0", [_fake_state(1)]
    torch.save(state, folder / "training_state.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="trained on cuda and continues on cpu"):
        resumed = pg.train("a2c", "CartPole-v1", resume=folder, device="cpu", total_steps=2 * TINY_A2C["total_steps"],
                           progress=False)
    assert resumed.history.status == "completed"
