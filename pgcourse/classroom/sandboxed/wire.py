"""The wire between the grading worker and the student process: frames, value payloads, their limits.

Messages are length-prefixed JSON frames (at most :data:`MAX_MESSAGE` bytes, :data:`MAX_NODES`
values, :data:`MAX_DEPTH` levels of nesting). Tensors, arrays, numpy scalars, generators and the
global RNG states travel as raw bytes (base64) with their dtype and shape, checked on arrival; a
payload that breaks the format is a :class:`ProtocolError`. The exceptions both sides share
(:class:`Lost`, :class:`StudentError`, :class:`TooLarge`) are here too. The framing itself and
the encoding of whole values (data only: never a reference to a live object) is
:class:`pgcourse.classroom.sandboxed.link.Link`.
"""
from __future__ import annotations

import base64
import math
import random
import struct
from typing import Any

import numpy as np
import torch


# --------------------------------------------------------------------------------------------------
# The wire: length-prefixed JSON frames, values encoded as data
# --------------------------------------------------------------------------------------------------

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 48 * 2**20   # bytes of JSON in one message
MAX_NODES = 200_000        # values in one message
MAX_DEPTH = 48             # nesting of containers
MAX_ELEMENTS = 2**26       # elements of one tensor or array
MAX_TEXT = 12_000          # characters of a traceback or error message sent back
MAX_RESULT_ELEMENTS = 2**20  # elements of all tensors and arrays one call of the student's function may return

_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
    "uint8", "int8", "int16", "int32", "int64", "bool")}
_NUMPY_KINDS = set("biufc")


class ProtocolError(Exception):
    """A message that does not follow the protocol (from the student process: it is misbehaving)."""


class TooLarge(Exception):
    """A value too large (or too deeply nested) to send."""


class NotData(TypeError):
    """A value that is not data (an object, a function, a module): it never crosses between the processes."""


class Lost(BaseException):
    """The student process is gone or must go (timeout, crash, broken protocol).

    A BaseException, so that ``except Exception`` in a check (or in student code) cannot swallow it.
    """

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind        # "timeout" | "crashed" | "protocol"
        self.reason = reason


class StudentError(Exception):
    """The student's function raised; ``str()`` is their traceback, as formatted in their process."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ProtocolError("expected base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise ProtocolError(f"bad base64: {error}") from None


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"non-standard JSON constant {name}")


def _short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n[… cut …]\n" + text[-limit // 2:]


class _Enc:
    """Bookkeeping of one encoding pass (sizes; the tensors, arrays and generators passed, in order)."""

    def __init__(self, collect: bool = False, grad_outputs: list | None = None):
        self.nodes = 0
        self.bytes = 0
        self.collect = collect
        self.tensors: list[torch.Tensor] = []
        self.arrays: list[np.ndarray] = []
        self.generators: list[torch.Generator] = []
        self.grad_outputs = grad_outputs   # student side: outputs that require grad (for the VJP)


class _Dec:
    """Bookkeeping of one decoding pass."""

    def __init__(self, collect: bool = False, grad_link: Any = None, max_elements: int | None = None):
        self.nodes = 0
        self.elements = 0
        self.max_elements = max_elements  # worker side, a student's result: checks turn values into lists
        self.collect = collect
        self.grad_link = grad_link        # worker side: (link, call_id, inputs) for returned tensors
        self.tensors: list[torch.Tensor] = []
        self.arrays: list[np.ndarray] = []
        self.generators: list[torch.Generator] = []
        self.outputs = 0


def _tensor_payload(tensor: torch.Tensor, enc: _Enc) -> dict[str, Any]:
    if tensor.is_sparse:
        tensor = tensor.to_dense()
    dtype_name = str(tensor.dtype).removeprefix("torch.")
    if dtype_name not in _TORCH_DTYPES or tensor.layout != torch.strided or tensor.is_quantized:
        raise TooLarge(f"cannot send a tensor of dtype {tensor.dtype} / layout {tensor.layout}")
    if tensor.numel() > MAX_ELEMENTS:
        raise TooLarge(f"a tensor of {tensor.numel():,} elements is too large to grade")
    # A fresh, densely packed copy: .contiguous() keeps the strides of size-1 views (logp[:, a] with B = 1
    # has stride 2), which a byte view refuses; the values are all that travel.
    detached = torch.Tensor.detach(tensor).cpu()
    plain = torch.empty(detached.shape, dtype=detached.dtype).copy_(detached).reshape(-1)
    raw = plain.view(torch.uint8).numpy().tobytes() if plain.numel() else b""
    enc.bytes += len(raw)
    if enc.bytes > MAX_MESSAGE:
        raise TooLarge("the values are too large to grade (more than 48 MB)")
    return {"tensor": dtype_name, "shape": list(tensor.shape), "data": _b64(raw),
            "rg": bool(tensor.requires_grad)}


def _tensor_from(payload: dict[str, Any], requires_grad: bool | None = None) -> torch.Tensor:
    dtype = _TORCH_DTYPES.get(payload.get("tensor"))
    shape = payload.get("shape")
    if dtype is None or not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise ProtocolError("bad tensor")
    if len(shape) > 32:
        raise ProtocolError("bad tensor rank")
    numel = math.prod(shape)
    if numel > MAX_ELEMENTS:
        raise ProtocolError("tensor too large")
    raw = _unb64(payload.get("data"))
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * itemsize:
        raise ProtocolError("tensor data of the wrong size")
    if numel == 0:
        tensor = torch.empty(shape, dtype=dtype)
    elif dtype == torch.bool:
        tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).ne(0).reshape(shape)
    else:
        tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
    rg = payload.get("rg") if requires_grad is None else requires_grad
    if rg is True and (tensor.is_floating_point() or tensor.is_complex()):
        tensor.requires_grad_(True)
    return tensor


def _array_payload(array: np.ndarray, enc: _Enc) -> dict[str, Any]:
    raw = np.ascontiguousarray(array).tobytes()
    enc.bytes += len(raw)
    if enc.bytes > MAX_MESSAGE or array.size > MAX_ELEMENTS:
        raise TooLarge("an array too large to grade")
    return {"ndarray": array.dtype.str, "shape": list(array.shape), "data": _b64(raw)}


def _array_from(payload: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(payload.get("ndarray"))
    except (TypeError, ValueError):
        raise ProtocolError("bad array dtype") from None
    shape = payload.get("shape")
    if dtype.kind not in _NUMPY_KINDS or dtype.hasobject or not isinstance(shape, list) or len(shape) > 32 or \
            not all(type(n) is int and n >= 0 for n in shape):
        raise ProtocolError("bad array")
    numel = math.prod(shape)
    raw = _unb64(payload.get("data"))
    if numel > MAX_ELEMENTS or len(raw) != numel * dtype.itemsize:
        raise ProtocolError("array data of the wrong size")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


# RNG states travel with every call from the worker to the student's function, and back, so that
# a function using the global RNGs behaves as if it ran inside the check.

def _rng_get() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": _b64(torch.get_rng_state().numpy().tobytes()),
            "np": [_b64(np.asarray(keys, dtype=np.uint32).tobytes()), int(pos), int(has_gauss), float(cached)],
            "py": [int(version), list(internal), gauss]}


MT_WORDS = 624  # MT19937's state: 624 words and a position in [0, 624], for numpy's generator and Python's


def _check_rng_state(torch_state: torch.Tensor, np_keys: np.ndarray, pos: Any, has_gauss: Any, cached: Any,
                     version: Any, internal: list[int], gauss: Any) -> None:
    """Every field of a global RNG state from the other side in the range its generator needs, before any is set:
    numpy accepts a position past its 624 words and crashes (or reads past its state) on the next draw, so nothing
    the sandbox sends may reach ``set_state`` unchecked (issue 46, item 7)."""
    problems = []
    if torch_state.numel() != torch.get_rng_state().numel():
        problems.append(f"torch state of {torch_state.numel()} bytes")
    if np_keys.shape != (MT_WORDS,):
        problems.append(f"numpy key of {np_keys.size} words")
    if type(pos) is not int or not 0 <= pos <= MT_WORDS:
        problems.append(f"numpy position {pos!r}")
    if has_gauss not in (0, 1) or type(has_gauss) is not int:
        problems.append(f"numpy has_gauss {has_gauss!r}")
    if not isinstance(cached, float | int) or isinstance(cached, bool) or not np.isfinite(cached):
        problems.append(f"numpy cached gaussian {cached!r}")
    if version != 3 or len(internal) != MT_WORDS + 1 or not all(0 <= word < 2**32 for word in internal[:-1]) \
            or not 0 <= internal[-1] <= MT_WORDS or not (gauss is None or isinstance(gauss, float)):
        problems.append("Python random state")
    if problems:
        raise ProtocolError(f"bad RNG state: {', '.join(problems)}")


def _rng_set(state: Any) -> None:
    try:
        torch_state = torch.frombuffer(bytearray(_unb64(state["torch"])), dtype=torch.uint8).clone()
        keys, pos, has_gauss, cached = state["np"]
        np_keys = np.frombuffer(_unb64(keys), dtype=np.uint32).copy()
        version, internal, gauss = state["py"]
        if not (isinstance(internal, list) and all(type(v) is int for v in internal)):
            raise ProtocolError("bad random state")
        _check_rng_state(torch_state, np_keys, pos, has_gauss, cached, version, internal, gauss)
        torch.set_rng_state(torch_state)
        np.random.set_state(("MT19937", np_keys, int(pos), int(has_gauss), float(cached)))
        random.setstate((int(version), tuple(internal), gauss if isinstance(gauss, float) else None))
    except ProtocolError:
        raise
    except Exception as error:  # noqa: BLE001 - any malformed state is a protocol error
        raise ProtocolError(f"bad RNG state: {error}") from None


def _seed_everything(seed: int = 0) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
