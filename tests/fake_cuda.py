"""A CPU stand-in for one CUDA GPU, to catch device mix-ups without a GPU (issue 32).

``with fake_cuda(): ...`` (or :func:`install` for a whole process, e.g. a notebook kernel) makes
``torch.cuda.is_available()`` say yes, so ``device="cuda"`` (or ``device="auto"`` with ``PGCOURSE_DEVICE=cuda``;
plain ``"auto"`` is the CPU on a GPU machine too: :mod:`pgcourse.devices`) trains "on the GPU"; a tensor put "on
the GPU" is a :class:`FakeCudaTensor`, a wrapper whose ``.device`` says ``cuda:0`` and whose numbers live in
a plain CPU tensor (``.elem``) that every op really computes with. What a real GPU refuses, it refuses:

- an op that mixes a fake-CUDA tensor with a CPU tensor of one or more dimensions raises
  ``RuntimeError: Expected all tensors to be on the same device ...`` (a 0-dim CPU tensor may mix, as on
  CUDA; a CUDA tensor may be indexed with CPU indices and ``copy_`` copies across devices, as on CUDA);
- ``.numpy()`` and ``np.asarray(...)`` raise CUDA's ``TypeError``; ``.item()``, ``.tolist()``, ``float()``
  and f-string formats of a 0-dim tensor work, as on CUDA;
- a ``torch.Generator(device="cuda")`` is refused by an op on the CPU and a CPU generator by an op on the
  GPU (CUDA's ``Expected a 'cpu' device type for generator`` errors).

What moves tensors moves them: ``.to("cuda")``, ``.cuda()``, ``.to(other)``, ``.cpu()``, ``.to("cpu")``
(differentiable both ways, as on CUDA), factories with ``device="cuda"`` (``zeros``, ``randn``,
``as_tensor``, ...), ``Module.to("cuda")`` and back (parameters keep their identity, as with CUDA's
``set_data``; done here with ``torch.utils.swap_tensors``, as ``Module._apply`` does for wrapper
subclasses), and everything derived from fake-CUDA tensors inside torch (views, in-place ops, autograd's
gradients, optimizer state made with ``zeros_like``). Random numbers drawn "on the GPU" by an op with a
``generator`` argument come from a generator of their own (played by a CPU generator:
``torch.cuda.manual_seed``, ``get_rng_state(_all)``, ``set_rng_state(_all)``, ``default_generators``,
``torch.random.fork_rng(device_type="cuda")`` and ``torch.manual_seed`` act on it), so, as on CUDA, GPU
draws leave the CPU generator's stream alone.

What it does not simulate:

- CUDA's numbers: its kernels, its random streams (Philox: the same seed gives other draws on a real GPU
  than here), TF32 matmuls and convolutions, reduction orders, non-deterministic kernels (atomics in
  ``index_add_``/``scatter_add_``/backward of indexing) — every number here is the CPU's, so a result that
  passes here may still differ on a GPU; a claim that fails here because the stream changed is the sign;
- ops without a ``generator`` argument that draw (``dropout``) take the CPU's stream here;
- optimisers: ``torch.optim`` takes its single-tensor path for a tensor subclass (CUDA takes ``foreach``),
  same maths, other rounding;
- asynchronous errors (here every error is raised at its line), streams, events, CUDA graphs, memory
  limits and out-of-memory, ``pin_memory``, ``non_blocking``, autocast/AMP, several GPUs (``cuda:1`` is
  ``cuda:0``), ``torch.compile``;
- other processes: a sweep's worker processes or a grader's sandbox start without the double (``device="auto"``
  is the CPU there); inside this process it holds in every thread;
- a factory reached other than through ``torch.<name>`` or a tensor method: :func:`install` replaces the
  torch functions and ``Tensor`` methods whose aten schema takes a ``device`` or a ``generator`` (and
  ``tensor``, ``as_tensor``, ``asarray``, ``Tensor.to``, ``Tensor.cuda``) by ones that see ``device="cuda"``
  and check generators; a name bound before it (``from torch import zeros``) keeps the CPU's factory. (A
  torch-function mode sees every call, but costs every op a Python call: a CPU run took 1.5x its CPU time
  under it, and the lessons' runs on the CPU paid it too.)
- during a backward pass, mixing is allowed (autograd moves gradients to their inputs' devices itself);
- ``cpu_param.data = cuda_tensor`` (legal on CUDA) raises here; in-place ops that change a tensor's shape
  (``resize_``, ``set_``, ``t_``) are not reflected in the wrapper; ``torch.save`` writes a fake-CUDA
  tensor as a CPU tensor (as read back with ``map_location="cpu"``), and ``torch.load(map_location="cuda")``
  fails; mixed pairs that CUDA accepts besides those named above are refused (stricter), and a 0-dim CPU
  tensor may mix with any op here (CUDA accepts it in elementwise ops only: weaker there).
"""
from __future__ import annotations

import collections
import contextlib
import sys
import threading
import types
from typing import Any, Iterator

import torch

FAKE_DEVICE = torch.device("cuda", 0)
CPU = torch.device("cpu")


def unusable_reason() -> str | None:
    """Why the double cannot stand in for CUDA in this torch (None: it can). It plays CUDA on a CPU build of torch
    (the course's pin, 2.13.0+cpu, and CI's). A CUDA build without a GPU calls its real runtime from places the
    double does not reach and fails there: torch 2.14.1+cu130's Adam asks ``torch.accelerator`` for the current
    stream ("CUDA driver version is insufficient"), so every run trained on the fake GPU would crash for a reason
    that is the double's, not the course's. Tests that train on it skip with this reason on such a build."""
    if torch.version.cuda is not None:
        return (f"the fake GPU needs a CPU build of torch; this is torch {torch.__version__}, a CUDA build, whose "
                "runtime the double cannot stand in for")
    return None


class FakeDeviceError(RuntimeError):
    """Raised where a real GPU raises ``RuntimeError`` over devices (so ``pytest.raises(RuntimeError)`` holds)."""


def _mixed_message(where: str) -> str:
    return (f"Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
            f"(fake cuda: {where})")


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------
class _GeneratorMeta(type(torch._C.Generator)):
    """``isinstance(g, torch.Generator)`` stays true for every generator while ``torch.Generator`` is patched."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, torch._C.Generator)

    def __subclasscheck__(cls, sub):
        return issubclass(sub, torch._C.Generator)


class FakeCudaGenerator(torch._C.Generator, metaclass=_GeneratorMeta):
    """``torch.Generator(device="cuda")``: a CPU generator whose ``.device`` says ``cuda:0``.

    Installed as ``torch.Generator``: ``torch.Generator()`` / ``torch.Generator("cpu")`` still make a plain
    CPU generator."""

    def __new__(cls, device: Any = "cpu"):
        if _is_cuda(device):
            return super().__new__(cls, "cpu")
        return torch._C.Generator(device)

    @property
    def device(self) -> torch.device:
        return FAKE_DEVICE


def _new_default_generator() -> FakeCudaGenerator:
    generator = FakeCudaGenerator("cuda")
    generator.manual_seed(torch.initial_seed())
    return generator


_state = types.SimpleNamespace(default_generator=None, installed=0, lock=threading.Lock(), patches=[])


def default_generator() -> FakeCudaGenerator:
    """The fake GPU's default generator (``torch.cuda.default_generators[0]``)."""
    if _state.default_generator is None:
        _state.default_generator = _new_default_generator()
    return _state.default_generator


# ---------------------------------------------------------------------------------------------
# the tensor
# ---------------------------------------------------------------------------------------------
def _is_cuda(device: Any) -> bool:
    if device is None:
        return False
    if isinstance(device, int):  # torch's bare device index means a CUDA device
        return True
    return torch.device(device).type == "cuda"


def _wrap(value):
    if isinstance(value, torch.Tensor) and not isinstance(value, FakeCudaTensor):
        return FakeCudaTensor(value)
    return value


def _to_numpy_error(*_args, **_kwargs):
    raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                    "host memory first.")


_INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl", "_index_put_impl_", "_unsafe_index",
              "_unsafe_index_put"}
_CROSS_DEVICE_OPS = {"copy_", "copy", "_copy_from", "_copy_from_and_resize", "_to_copy", "lift_fresh",
                     "lift_fresh_copy", "_has_compatible_shallow_copy_type"}


class _OpInfo:
    """What :meth:`FakeCudaTensor.__torch_dispatch__` needs to know of an aten op, read once from its schema."""

    def __init__(self, func):
        schema = func._schema
        names = [a.name for a in schema.arguments]
        self.name = schema.name.split("::")[-1]
        self.kind = "cross" if self.name in _CROSS_DEVICE_OPS else "index" if self.name in _INDEX_OPS else "plain"
        self.generator = names.index("generator") if "generator" in names else None
        self.to_copy = self.name == "_to_copy"
        self.syncing = self.name in _SYNCING_OPS
        self.written = []  # (return index, argument name, argument position): ops that write into an argument
        for i, returned in enumerate(schema.returns):
            if returned.alias_info is None or not returned.alias_info.is_write:
                continue
            for position, argument in enumerate(schema.arguments):
                if (argument.alias_info is not None and argument.alias_info.is_write
                        and set(argument.alias_info.before_set) == set(returned.alias_info.before_set)):
                    self.written.append((i, argument.name, position))
                    break


_OP_INFO: dict = {}

# What would make the host wait for a real GPU, counted as it happens (:func:`count_syncs`): every copy between the
# host and the device (a blocking CUDA copy synchronises the stream), every value read (``item``, ``float``,
# ``bool``: ``_local_scalar_dense``; ``tolist``) and the ops whose output size depends on the data (``nonzero``
# behind boolean indexing, ``masked_select``, ``unique``).
SYNCS: collections.Counter = collections.Counter()
_SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "_unique", "_unique2", "unique_dim",
                "unique_consecutive", "is_nonzero"}


@contextlib.contextmanager
def count_syncs() -> Iterator[collections.Counter]:
    """``with count_syncs() as syncs:``: the syncs of the block by kind (what a real GPU would wait for; see SYNCS)."""
    before = SYNCS.copy()
    counted: collections.Counter = collections.Counter()
    try:
        yield counted
    finally:
        counted.update(SYNCS - before)


def _from_torch_grouping() -> bool:
    """Whether this move comes from ``clip_grad_norm_``'s grouping by device: torch groups the double's tensors
    under the CPU (the device their C++ side has) and moves the norms "to" it; on CUDA it is the same device and
    no copy (an artefact of the double, not counted as a sync)."""
    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            return False
        if frame.f_code.co_filename.endswith(("nn/utils/clip_grad.py", "nn\\utils\\clip_grad.py")):
            return True
        frame = frame.f_back
    return False


def _count_copy(info: _OpInfo, args) -> None:
    """A cross-device op (``copy_``, ``_to_copy``...) whose tensors are on both sides: a host-device copy."""
    sides = {type(a) is FakeCudaTensor for a in args if isinstance(a, torch.Tensor)}
    if len(sides) == 2:
        SYNCS["copy between host and device"] += 1


def _scan(values, found: list) -> None:
    """found[0]: a fake-CUDA tensor is among ``values``; found[1]: a CPU tensor of one or more dimensions."""
    for value in values:
        if type(value) is FakeCudaTensor:
            found[0] = True
        elif isinstance(value, torch.Tensor):
            if value.dim() > 0 and found[1] is None:
                found[1] = value
        elif type(value) is list or type(value) is tuple:
            _scan(value, found)


def _check_devices(info: _OpInfo, args, kwargs) -> None:
    """Raise as CUDA does when the op's tensor arguments are on both devices (0-dim CPU tensors may mix)."""
    if info.kind == "cross":
        return
    found = [False, None]
    if info.kind == "index":
        if args and type(args[0]) is FakeCudaTensor:  # CPU indices may index a GPU tensor
            _scan(args[:1] + args[2:], found)
            _scan(kwargs.values(), found)
        else:
            gpu_indices = [False, None]
            _scan(args[1:2], gpu_indices)
            if gpu_indices[0]:
                raise FakeDeviceError("indices should be either on cpu or on the same device as the indexed tensor "
                                      f"(cpu) (fake cuda: aten.{info.name})")
            _scan(args, found)
            _scan(kwargs.values(), found)
    else:
        _scan(args, found)
        _scan(kwargs.values(), found)
    if found[0] and found[1] is not None:
        raise FakeDeviceError(_mixed_message(f"aten.{info.name} got a CPU tensor of shape {tuple(found[1].shape)}"))


def _unwrap_scanning(values, found: list) -> list:
    """``_unwrap_all`` of a sequence and ``_scan`` of it in one pass (what a plain op needs, the hot path)."""
    out = []
    for value in values:
        kind = type(value)
        if kind is FakeCudaTensor:
            found[0] = True
            out.append(value.elem)
        elif kind is list or kind is tuple:
            out.append(kind(_unwrap_scanning(value, found)))
        else:
            if found[1] is None and isinstance(value, torch.Tensor) and value.dim() > 0:
                found[1] = value
            out.append(value)
    return out


def _wrap_output(elem: torch.Tensor) -> FakeCudaTensor:
    """Wrap an op's CPU output: a plain CPU tensor, which needs no grad as autograd runs above the dispatch (the
    checked constructor otherwise)."""
    if elem.requires_grad or not elem.is_cpu:
        return FakeCudaTensor(elem)
    wrapper = torch.Tensor._make_wrapper_subclass(
        FakeCudaTensor, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
        layout=elem.layout, device=elem.device, requires_grad=False)
    wrapper.elem = elem
    return wrapper


def _unwrap_all(value):
    if type(value) is FakeCudaTensor:
        return value.elem
    if type(value) is list or type(value) is tuple:
        return type(value)(_unwrap_all(v) for v in value)
    return value


def _wrap_all(value):
    if type(value) is torch.Tensor:
        return FakeCudaTensor(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap_all(v) for v in value) if type(value) in (list, tuple) else tuple(
            _wrap_all(v) for v in value)
    return value


def _in_backward() -> bool:
    return torch._C._current_graph_task_id() != -1


class FakeCudaTensor(torch.Tensor):
    """A tensor "on" ``cuda:0``: its numbers are the CPU tensor ``elem``; every aten op unwraps, checks the
    devices, computes on the CPU and wraps its tensor outputs again."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor, requires_grad: bool | None = None):
        if type(elem) is not torch.Tensor:
            raise TypeError(f"FakeCudaTensor wraps a plain CPU tensor, not {type(elem).__name__}")
        if elem.device.type != "cpu":
            raise TypeError(f"FakeCudaTensor wraps a CPU tensor, not one on {elem.device}")
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=elem.device,
            requires_grad=elem.requires_grad if requires_grad is None else requires_grad)
        wrapper.elem = elem.detach() if elem.requires_grad else elem
        return wrapper

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        info = _OP_INFO.get(func)
        if info is None:
            info = _OP_INFO[func] = _OpInfo(func)
        if (info.kind == "plain" and not kwargs and info.generator is None and not info.written
                and not info.syncing):
            # the hot path (most ops of a training step): check and unwrap in one pass, wrap the outputs directly
            found = [False, None]
            unwrapped = _unwrap_scanning(args, found)
            if found[0] and found[1] is not None and not _in_backward():
                raise FakeDeviceError(_mixed_message(f"aten.{info.name} got a CPU tensor of shape "
                                                     f"{tuple(found[1].shape)}"))
            output = func._op(*unwrapped)  # the OpOverload's own C++ callable (one Python frame fewer per op)
            if type(output) is torch.Tensor:
                return _wrap_output(output)
            return _wrap_all(output)
        kwargs = kwargs or {}
        if not _in_backward():  # autograd moves gradients itself; its internal zeros are made on the CPU
            _check_devices(info, args, kwargs)
        if info.syncing:
            SYNCS[info.name] += 1
        elif info.kind == "cross":
            _count_copy(info, args)
        if info.generator is not None and kwargs.get("generator") is None and (
                len(args) <= info.generator or args[info.generator] is None):
            args = args[:info.generator]  # GPU draws come from the GPU's generator
            kwargs = {**kwargs, "generator": default_generator()}
        output = func(*_unwrap_all(args), **{k: _unwrap_all(v) for k, v in kwargs.items()})
        if info.written:  # an op that writes into an argument returns that very argument
            results = list(output) if isinstance(output, (tuple, list)) else [output]
            for i, name, position in info.written:
                original = kwargs[name] if name in kwargs else args[position] if position < len(args) else None
                results[i] = original if original is not None else _wrap_all(results[i])
            done = {i for i, _, _ in info.written}
            results = [r if i in done else _wrap_all(r) for i, r in enumerate(results)]
            return type(output)(results) if isinstance(output, (tuple, list)) else results[0]
        if info.to_copy and kwargs.get("device") is not None and not _is_cuda(kwargs["device"]):
            return output  # an explicit copy to the CPU
        return _wrap_all(output)

    # --- a traceable wrapper subclass: Module._apply swaps it into a parameter (which keeps its identity)
    def __tensor_flatten__(self):
        return ["elem"], None

    @staticmethod
    def __tensor_unflatten__(inner_tensors, metadata, outer_size, outer_stride):
        return FakeCudaTensor(inner_tensors["elem"])

    # --- what CUDA tensors say about themselves
    @property
    def device(self) -> torch.device:
        return FAKE_DEVICE

    @property
    def is_cuda(self) -> bool:
        return True

    @property
    def is_cpu(self) -> bool:
        return False

    def get_device(self) -> int:
        return 0

    def type(self, dtype=None, non_blocking=False, **kwargs):
        if dtype is None:
            return torch.Tensor.type(self.elem).replace("torch.", "torch.cuda.", 1)
        return super().type(dtype, non_blocking, **kwargs)

    def __repr__(self, *, tensor_contents=None) -> str:
        text = repr(self.elem.detach())
        suffix = "device='cuda:0'"
        if self.grad_fn is not None:
            suffix += f", grad_fn=<{type(self.grad_fn).__name__}>"
        elif self.requires_grad:
            suffix += ", requires_grad=True"
        return text[:-1] + f", {suffix})" if text.endswith(")") else text

    def __format__(self, spec: str) -> str:
        if self.dim() == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    # --- host copies
    numpy = _to_numpy_error
    __array__ = _to_numpy_error

    def tolist(self):
        SYNCS["tolist"] += 1
        return self.elem.tolist()

    def __reduce_ex__(self, protocol):  # saved as the CPU tensor it holds (as if loaded with map_location="cpu")
        return self.elem.detach().clone().requires_grad_(self.requires_grad).__reduce_ex__(protocol)

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        copy = FakeCudaTensor(self.elem.detach().clone(), requires_grad=self.requires_grad)
        if isinstance(self, torch.nn.Parameter) or getattr(self, "_is_param", False):
            copy = torch.nn.Parameter(copy, requires_grad=self.requires_grad)
        memo[id(self)] = copy
        return copy

    # --- moving
    def cpu(self, memory_format=torch.preserve_format):
        return _ToCpu.apply(self)

    def cuda(self, device=None, non_blocking=False, memory_format=torch.preserve_format):
        return self

    def to(self, *args, **kwargs):
        return _move(self, args, kwargs)


class _ToFakeCuda(torch.autograd.Function):
    """CPU -> fake GPU, differentiable (the gradient goes back to the CPU, as with CUDA's ``.to``)."""

    @staticmethod
    def forward(ctx, tensor):
        SYNCS["copy to the device"] += 1
        return FakeCudaTensor(tensor.detach().clone())

    @staticmethod
    def backward(ctx, grad):
        return grad.elem if isinstance(grad, FakeCudaTensor) else grad


class _ToCpu(torch.autograd.Function):
    """Fake GPU -> CPU, differentiable (the gradient goes back to the GPU)."""

    @staticmethod
    def forward(ctx, tensor):
        if not _from_torch_grouping():
            SYNCS["copy to the host"] += 1
        return tensor.elem.clone()

    @staticmethod
    def backward(ctx, grad):
        return _wrap(grad)


def _parse_to(tensor: torch.Tensor, args, kwargs):
    """``Tensor.to``'s arguments -> (device or None, dtype or None, copy, memory_format kwargs)."""
    kwargs = dict(kwargs)
    copy = kwargs.pop("copy", False)
    args = list(args)
    if args and isinstance(args[0], torch.Tensor):  # .to(other[, non_blocking, copy]): other's device and dtype
        other = args.pop(0)
        if len(args) > 1:
            copy = args[1]
        memory_format = kwargs.get("memory_format")
        return other.device, other.dtype, copy, {} if memory_format is None else {"memory_format": memory_format}
    positional_copy = [a for a in args[2:] if isinstance(a, bool)]
    if len(args) >= 2 and isinstance(args[0], torch.dtype):  # .to(dtype, non_blocking, copy)
        copy = args[2] if len(args) > 2 else copy
        args = args[:2]
    elif len(positional_copy) > 1 or (len(args) > 3):  # .to(device, dtype, non_blocking, copy)
        copy = args[3]
        args = args[:3]
    device, dtype, _non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
    return device, dtype, copy, {} if memory_format is None else {"memory_format": memory_format}


def _move(tensor: torch.Tensor, args, kwargs):
    device, dtype, copy, extra = _parse_to(tensor, args, kwargs)
    on_gpu = isinstance(tensor, FakeCudaTensor)
    to_gpu = on_gpu if device is None else _is_cuda(device)
    if to_gpu and not on_gpu:
        tensor, copy = _ToFakeCuda.apply(tensor), False
    elif on_gpu and not to_gpu:
        tensor, copy = _ToCpu.apply(tensor), False
    if dtype is not None or extra or copy:
        tensor = _TENSOR_TO(tensor, dtype=dtype if dtype is not None else tensor.dtype, copy=copy, **extra)
    return tensor


# ---------------------------------------------------------------------------------------------
# factories, moves and generators: the torch functions and tensor methods that take a device or a generator
# ---------------------------------------------------------------------------------------------
_RANDOM_FACTORIES = {"rand", "randn", "randint", "randperm", "normal", "rand_like", "randn_like", "randint_like",
                     "bernoulli", "multinomial", "poisson"}
_DATA_FACTORIES = {"tensor", "as_tensor", "asarray"}


_TENSOR_TO, _TENSOR_CUDA = torch.Tensor.to, torch.Tensor.cuda


def _device_call(func, name: str, args, kwargs):
    """``func(*args, **kwargs)`` where ``kwargs`` name a device or a generator: ``device="cuda"`` gives a
    fake-CUDA result, and a generator is checked against the device the op runs on."""
    device, generator = kwargs.get("device"), kwargs.get("generator")
    kwargs = dict(kwargs)
    if device is not None:
        on_gpu = _is_cuda(device)
    else:
        found = [False, None]
        _scan(args, found)
        _scan(kwargs.values(), found)
        on_gpu = found[0]
    if generator is not None:  # generators are keyword arguments in torch's random functions
        if type(generator) is FakeCudaGenerator and not on_gpu:
            raise FakeDeviceError(f"Expected a 'cpu' device type for generator but found 'cuda' "
                                  f"(fake cuda: {name})")
        if type(generator) is not FakeCudaGenerator and on_gpu:
            raise FakeDeviceError(f"Expected a 'cuda' device type for generator but found 'cpu' "
                                  f"(fake cuda: {name})")
    if device is None:
        return func(*args, **kwargs)
    if name in _DATA_FACTORIES and args and isinstance(args[0], torch.Tensor):
        return _move(args[0], (device,), {"dtype": kwargs["dtype"]} if kwargs.get("dtype") else {})
    if not on_gpu:
        return func(*args, **kwargs)
    if name in _DATA_FACTORIES:  # host data (a list, an array) made into a GPU tensor: a copy
        SYNCS["copy to the device"] += 1
    kwargs["device"] = CPU
    requires_grad = kwargs.pop("requires_grad", False)
    if name in _RANDOM_FACTORIES and generator is None:
        kwargs["generator"] = default_generator()
    output = _wrap_all(func(*args, **kwargs))
    if requires_grad:
        output.requires_grad_(True)
    return output


def _with_devices(func, name: str):
    """``func`` that hands a call naming a device or a generator to :func:`_device_call` (every other call goes
    straight through: no Python between the caller and torch beyond this test)."""

    def call(*args, **kwargs):
        if kwargs and (kwargs.get("device") is not None or kwargs.get("generator") is not None):
            return _device_call(func, name, args, kwargs)
        return func(*args, **kwargs)

    call.__name__, call.__qualname__, call.__doc__, call.__wrapped__ = name, name, func.__doc__, func
    return call


def _tensor_to(self, *args, **kwargs):
    """``Tensor.to`` of a CPU tensor (a fake-CUDA tensor has its own)."""
    return _move(self, args, kwargs)


def _tensor_cuda(self, device=None, non_blocking=False, memory_format=torch.preserve_format):
    """``Tensor.cuda`` of a CPU tensor: a copy to the fake GPU."""
    return _move(self, ("cuda",), {})


_NEW_TENSOR, _TORCH_TENSOR = torch.Tensor.new_tensor, torch.tensor


def _new_tensor(self, data, **kwargs):
    """``Tensor.new_tensor``: on the device of ``self`` unless told otherwise (torch's own would put the data of a
    fake-CUDA tensor's ``new_tensor`` on the CPU, where its C++ side lives), in the dtype of ``self`` unless told."""
    device = kwargs.get("device")
    if device is None and type(self) is FakeCudaTensor:
        device = FAKE_DEVICE
    if device is None or not _is_cuda(device):
        return _NEW_TENSOR(self, data, **kwargs)
    kwargs = {**kwargs, "device": device, "dtype": kwargs.get("dtype") or self.dtype}
    return _device_call(_TORCH_TENSOR, "tensor", (data,), kwargs)


def _device_and_generator_names() -> tuple[list[str], list[str]]:
    """(names in ``torch``, names of ``torch.Tensor`` methods) of the aten ops that take a device or a generator,
    read from torch's own schemas, with the data factories (not aten ops: ``tensor``, ``as_tensor``, ``asarray``)
    and without ``Tensor.to`` (:func:`_tensor_to`)."""
    in_torch, in_tensor = {"tensor", "as_tensor", "asarray"}, set()
    for schema in torch._C._jit_get_all_schemas():
        if not schema.name.startswith("aten::"):
            continue
        if not {"device", "generator"} & {a.name for a in schema.arguments}:
            continue
        name = schema.name.split("::")[-1]
        if name.startswith("_") or name == "to":
            continue
        if callable(getattr(torch, name, None)) and name != "Generator":
            in_torch.add(name)
        if callable(getattr(torch.Tensor, name, None)):
            in_tensor.add(name)
    return sorted(in_torch), sorted(in_tensor)


# ---------------------------------------------------------------------------------------------
# torch.cuda
# ---------------------------------------------------------------------------------------------
class _FakeCudaDeviceContext:
    def __init__(self, device=None):
        self.device = device

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _cuda_functions() -> dict[str, Any]:
    gen = default_generator
    return {
        "is_available": lambda: True,
        "is_initialized": lambda: True,
        "_lazy_init": lambda: None,
        "device_count": lambda: 1,
        "current_device": lambda: 0,
        "set_device": lambda device: None,
        "device": _FakeCudaDeviceContext,
        "device_of": _FakeCudaDeviceContext,
        "synchronize": lambda device=None: None,
        "empty_cache": lambda: None,
        "memory_allocated": lambda device=None: 0,
        "mem_get_info": lambda device=None: (16 * 2 ** 30, 16 * 2 ** 30),  # (free, total): the properties' 16 GiB
        "max_memory_allocated": lambda device=None: 0,
        "reset_peak_memory_stats": lambda device=None: None,
        "get_device_name": lambda device=None: "fake cuda (CPU)",
        "get_device_capability": lambda device=None: (8, 0),
        "get_device_properties": lambda device=None: types.SimpleNamespace(
            name="fake cuda (CPU)", total_memory=16 * 2 ** 30, major=8, minor=0, multi_processor_count=1),
        "is_bf16_supported": lambda *a, **k: True,
        "manual_seed": lambda seed: gen().manual_seed(int(seed)) and None,
        "manual_seed_all": lambda seed: gen().manual_seed(int(seed)) and None,
        "seed": lambda: gen().seed() and None,
        "seed_all": lambda: gen().seed() and None,
        "initial_seed": lambda: gen().initial_seed(),
        "get_rng_state": lambda device="cuda": gen().get_state(),
        "set_rng_state": lambda state, device="cuda": gen().set_state(state.clone()),
        "get_rng_state_all": lambda: [gen().get_state()],
        "set_rng_state_all": lambda states: [gen().set_state(s.clone()) for s in list(states)[:1]] and None,
    }


def _module_apply(original):
    """``Module._apply`` that swaps the parameters of a module with fake-CUDA ones into their new values
    (``torch.__future__.set_swap_module_params_on_conversion``), so ``.cpu()``/``.double()`` keep each
    parameter object as CUDA's ``set_data`` does. (To the GPU, the traceable wrapper swaps by itself.)"""

    def _apply(self, fn, recurse=True):
        own = list(self._parameters.values()) + list(self._buffers.values())
        if not any(isinstance(t, FakeCudaTensor) for t in own):
            return original(self, fn, recurse)
        previous = torch.__future__.get_swap_module_params_on_conversion()
        torch.__future__.set_swap_module_params_on_conversion(True)
        try:
            return original(self, fn, recurse)
        finally:
            torch.__future__.set_swap_module_params_on_conversion(previous)

    return _apply


def _patch(owner, name, value) -> None:
    missing = object()  # a class's own attribute only: what it inherits comes back by itself when ours goes
    before = owner.__dict__.get(name, missing) if isinstance(owner, type) else getattr(owner, name, missing)
    _state.patches.append((owner, name, before, missing))
    setattr(owner, name, value)


def install() -> None:
    """Install the double for the rest of this process (e.g. at a notebook kernel's start)."""
    with _state.lock:
        _state.installed += 1
        if _state.installed > 1:
            return
        _state.default_generator = _new_default_generator()
        for name, value in _cuda_functions().items():
            _patch(torch.cuda, name, value)
        _patch(torch.cuda, "default_generators", (default_generator(),))
        _patch(torch, "Generator", FakeCudaGenerator)
        _patch(torch.nn.Module, "_apply", _module_apply(torch.nn.Module._apply))
        _patch(torch.Tensor, "to", _tensor_to)
        _patch(torch.Tensor, "cuda", _tensor_cuda)
        _patch(torch.Tensor, "new_tensor", _new_tensor)
        in_torch, in_tensor = _device_and_generator_names()
        for name in in_torch:
            _patch(torch, name, _with_devices(getattr(torch, name), name))
        for name in in_tensor:
            _patch(torch.Tensor, name, _with_devices(getattr(torch.Tensor, name), name))


def uninstall() -> None:
    """Undo :func:`install` (the last of nested installs undoes it)."""
    with _state.lock:
        if _state.installed == 0:
            return
        _state.installed -= 1
        if _state.installed:
            return
        for owner, name, value, missing in reversed(_state.patches):
            if value is missing:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        _state.patches.clear()
        _state.default_generator = None


@contextlib.contextmanager
def fake_cuda() -> Iterator[None]:
    """``with fake_cuda(): ...`` — the double for the block (see the module's docstring)."""
    install()
    try:
        yield
    finally:
        uninstall()


def on_fake_cuda(tensor: Any) -> bool:
    """Whether ``tensor`` is a fake-CUDA tensor (what ``.is_cuda`` means under the double)."""
    return isinstance(tensor, FakeCudaTensor)
