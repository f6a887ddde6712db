"""Inside ``pgcourse grade``: the trusted grading worker and the sandboxed student process it forks.

Who runs what (see :mod:`pgcourse.grading` for the teacher's side)::

    pgcourse grade (parent)          reads the course and the submissions, writes the gradebook
      └─ grading worker (trusted)    python -m pgcourse._gradeworker; imports torch, pgcourse and the checks
           │                         before any student code exists; runs the course's check cells
           └─ student process        os.fork() of the worker, then sandboxed; runs the course's setup
                                     cells and the student's answer cells, and nothing else

The verdict is computed in the grading worker, by the course's own check cell and the real
``pgcourse.checks``: student code never runs in that process. When a check calls the student's
function, the call goes to the student process over a socket, as *data* (JSON: numbers, strings,
tensors and arrays as raw bytes, containers); the return value, the arguments as the function
left them (in-place changes), the generator and global RNG states come back the same way. A
returned tensor that requires grad is connected to the check's inputs by :class:`_RemoteGrad`,
whose backward asks the student process for the vector-Jacobian product, so gradient checks work
as in a notebook. Objects that cannot travel as data (an environment, a policy callable) travel
as references whose public methods the other side may call, nothing more.

So a student can monkeypatch anything in *their* process (``pgcourse.checks``, ``torch.allclose``,
``numpy.testing``), print what they like (their output goes to a size-limited file nobody reads),
exit with any status: none of it reaches the verdict. The only way to make a check pass is to
return the right values.

The student process is forked from the worker (warm imports, so a restart costs milliseconds),
then, on Linux where unprivileged namespaces work, moved into its own user, mount, PID, network
and IPC namespaces with the whole filesystem read-only except a small private /tmp: it cannot
write the gradebook, the course or the submissions, cannot signal the grader, has no network.
Everywhere: limits on address space (memory), file size (output), CPU time and open files; the
worker enforces wall-clock limits and kills the process group (and the PID namespace) on expiry.
"""
from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import ctypes
import errno
import gc
import io
import json
import linecache
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
import types
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

try:
    import resource
except ImportError:  # not on Windows (where pgcourse grade refuses to run anyway)
    resource = None

# --------------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission (the defaults suit the course's small exercises)."""

    exercise_s: float = 30.0      # wall clock per exercise: its answer cells plus its check
    submission_s: float = 300.0   # wall clock for the whole submission
    memory_mb: int = 2048         # address space the student's code may add to the process
    output_mb: int = 8            # printed output (and any one file written) per exercise
    scratch_mb: int = 64          # private /tmp of the sandbox

    def __post_init__(self) -> None:
        for name in ("exercise_s", "submission_s", "memory_mb", "output_mb", "scratch_mb"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"limit {name} must be a positive number, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# The wire: length-prefixed JSON frames, values encoded as data or references
# --------------------------------------------------------------------------------------------------

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 48 * 2**20   # bytes of JSON in one message
MAX_NODES = 200_000        # values in one message
MAX_DEPTH = 48             # nesting of containers
MAX_ELEMENTS = 2**26       # elements of one tensor or array
MAX_TEXT = 12_000          # characters of a traceback or error message sent back
ALARM_GRACE = 2.0          # seconds the worker's own work in a check may run past the exercise deadline

_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
    "uint8", "int8", "int16", "int32", "int64", "bool")}
_NUMPY_KINDS = set("biufc")


class ProtocolError(Exception):
    """A message that does not follow the protocol (from the student process: it is misbehaving)."""


class TooLarge(Exception):
    """A value too large (or too deeply nested) to send."""


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

    def __init__(self, collect: bool = False, allow_foreign_refs: bool = True, grad_link: Any = None):
        self.nodes = 0
        self.collect = collect
        self.allow_foreign_refs = allow_foreign_refs
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
    plain = torch.Tensor.detach(tensor).cpu().contiguous().reshape(-1)
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


def _rng_set(state: Any) -> None:
    try:
        torch_state = torch.frombuffer(bytearray(_unb64(state["torch"])), dtype=torch.uint8).clone()
        keys, pos, has_gauss, cached = state["np"]
        np_keys = np.frombuffer(_unb64(keys), dtype=np.uint32).copy()
        version, internal, gauss = state["py"]
        if not (isinstance(internal, list) and all(type(v) is int for v in internal)):
            raise ProtocolError("bad random state")
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


class Remote:
    """A reference to an object that lives in the other process: calls and public attributes go there."""

    __slots__ = ("_link", "_rid", "_type", "_callable")

    def __init__(self, link: Link, rid: int, type_name: str, is_callable: bool):
        self._link, self._rid, self._type, self._callable = link, rid, type_name, is_callable

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._link.call_remote(self, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"{self._type!r} object (in the other process) has no attribute {name!r} "
                                 "available here")
        return self._link.request_value("getattr", {"target": self._rid, "name": name})

    def __getitem__(self, key: Any) -> Any:
        return self._link.request_value("item", {"target": self._rid, "key": key})

    def __len__(self) -> int:
        value = self._link.request_value("len", {"target": self._rid})
        if type(value) is not int or value < 0:
            raise TypeError("len() of a remote object did not return an int")
        return value

    def __iter__(self):
        value = self._link.request_value("list", {"target": self._rid})
        if not isinstance(value, list):
            raise TypeError("iterating over a remote object did not give a list")
        return iter(value)

    def __bool__(self) -> bool:
        if self._link.trusted:  # a check never needs the truth value of an object it cannot inspect
            raise TypeError(f"the truth value of a {self._type!r} object returned by the student's code "
                            "is not available to the check")
        return True

    def __repr__(self) -> str:
        return f"<{self._type} object in the {'student' if self._link.trusted else 'grading'} process>"


def _is_forbidden_export(value: Any) -> bool:
    """Objects the grading worker never hands to student code: modules, classes and module-level builtins
    (the student process may only use the public methods of what the check passes it)."""
    if isinstance(value, types.ModuleType | type):
        return True
    if isinstance(value, types.BuiltinFunctionType) and isinstance(getattr(value, "__self__", None), types.ModuleType):
        return True
    return False


class Link:
    """One end of the socket between the grading worker (``trusted=True``) and the student process.

    Requests and responses may nest: while the worker waits for the student's function, that
    function may call back into objects the check passed it (an environment, a policy), and the
    worker serves those calls. The worker never sends a request while serving one.
    """

    def __init__(self, sock: socket.socket, trusted: bool):
        self.sock = sock
        self.trusted = trusted
        self.exports: dict[int, Any] = {}
        self._next_export = 1
        self._next_request = 1
        self.deadline: float | None = None   # worker: when waiting raises Lost("timeout")
        self.timeout_reason = "time limit"
        self.lost: Lost | None = None
        self.last_student_error: StudentError | None = None
        self.handlers: dict[str, Any] = {"getattr": self._h_getattr, "call": self._h_call, "item": self._h_item,
                                         "len": self._h_len, "list": self._h_list}
        if trusted:
            sock.setblocking(False)

    # -- framing ------------------------------------------------------------------------------
    def _fail(self, kind: str, reason: str) -> Lost:
        if self.lost is None:
            self.lost = Lost(kind, reason)
        return self.lost

    def _check_deadline(self) -> None:
        if self.lost is not None:
            raise self.lost
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self._fail("timeout", self.timeout_reason)

    def _wait(self, write: bool) -> None:
        if self.lost is not None:
            raise self.lost
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise self._fail("timeout", self.timeout_reason)
        readable, writable, _ = select.select([] if write else [self.sock], [self.sock] if write else [], [],
                                              timeout)
        if not readable and not writable:
            raise self._fail("timeout", self.timeout_reason)

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
        if len(data) > MAX_MESSAGE:
            raise TooLarge("message too large")
        view = memoryview(_HEADER.pack(len(data)) + data)
        if self.trusted:
            self._check_deadline()
        while view:
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, InterruptedError):
                if self.trusted:
                    self._wait(write=True)
                continue
            except OSError:
                if self.trusted:
                    raise self._fail("crashed", "the connection to the student process broke") from None
                os._exit(0)  # the grading worker is gone: nothing left to do
            view = view[sent:]

    def _recv_exact(self, size: int) -> bytes:
        chunks = bytearray()
        if self.trusted:
            self._check_deadline()
        while len(chunks) < size:
            try:
                chunk = self.sock.recv(min(size - len(chunks), 1 << 20))
            except (BlockingIOError, InterruptedError):
                if self.trusted:
                    self._wait(write=False)
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if self.trusted:
                    raise self._fail("crashed", "the student process ended")
                os._exit(0)
            chunks += chunk
        return bytes(chunks)

    def recv(self) -> dict[str, Any]:
        (size,) = _HEADER.unpack(self._recv_exact(_HEADER.size))
        if size > MAX_MESSAGE:
            raise self._fail("protocol", "the student process sent an oversized message")
        data = self._recv_exact(size)
        try:
            message = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, ProtocolError, RecursionError):
            raise self._fail("protocol", "the student process sent a malformed message") from None
        if not isinstance(message, dict):
            raise self._fail("protocol", "the student process sent a malformed message")
        return message

    # -- requests -------------------------------------------------------------------------------
    def request(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        number = self._next_request
        self._next_request += 1
        self.send({"k": "q", "id": number, "op": op, **payload})
        while True:
            message = self.recv()
            kind = message.get("k")
            if kind == "r" and message.get("id") == number:
                return message
            if kind == "q":
                self.serve(message)
                continue
            if self.trusted:
                raise self._fail("protocol", "the student process sent an unexpected message")
            os._exit(0)

    def serve(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(message.get("op")) if isinstance(message.get("op"), str) else None
        number = message.get("id")
        if handler is None or type(number) is not int:
            if self.trusted:
                raise self._fail("protocol", "the student process sent an unknown request")
            os._exit(0)
        try:
            value = handler(message)
            try:
                response = {"k": "r", "id": number, "ok": self.enc(value, _Enc())}
            except TooLarge as error:
                raise ValueError(str(error)) from None
        except Lost:
            raise
        except BaseException as error:  # noqa: BLE001 - reported to the other side
            if not self.trusted and isinstance(error, KeyboardInterrupt | SystemExit):
                error = RuntimeError(f"{type(error).__name__} while serving the grader")
            response = {"k": "r", "id": number, "err": self._describe_error(error)}
        self.send(response)

    def _describe_error(self, error: BaseException) -> dict[str, Any]:
        return {"type": type(error).__name__, "message": _short(str(error), 2000)}

    def request_value(self, op: str, payload: dict[str, Any]) -> Any:
        """A simple request (getattr, item, len, list) whose answer is one value."""
        if "key" in payload:
            payload = {**payload, "key": self.enc(payload["key"], _Enc())}
        response = self.request(op, payload)
        return self._answer(response)

    def _answer(self, response: dict[str, Any], dec: _Dec | None = None) -> Any:
        if "err" in response:
            self._raise_remote(response["err"])
        if "ok" not in response:
            raise self._protocol("response without a value")
        return self.dec(response["ok"], dec or _Dec())

    def _protocol(self, what: str) -> BaseException:
        if self.trusted:
            return self._fail("protocol", f"the student process broke the protocol ({what})")
        return ProtocolError(what)

    def _raise_remote(self, error: Any) -> None:
        if not isinstance(error, dict):
            raise self._protocol("bad error")
        kind, message = str(error.get("type", "Exception"))[:100], str(error.get("message", ""))
        if self.trusted:
            if kind == "NotImplementedError":
                raise NotImplementedError(message)
            text = _short(str(error.get("traceback") or f"{kind}: {message}"))
            student_error = StudentError(text)
            self.last_student_error = student_error
            raise student_error
        known = {"AttributeError": AttributeError, "TypeError": TypeError, "ValueError": ValueError,
                 "IndexError": IndexError, "KeyError": KeyError, "RuntimeError": RuntimeError,
                 "ZeroDivisionError": ZeroDivisionError, "AssertionError": AssertionError,
                 "NotImplementedError": NotImplementedError, "StopIteration": RuntimeError}
        raise known.get(kind, RuntimeError)(message if kind in known else f"{kind}: {message}")

    # -- values -----------------------------------------------------------------------------------
    def export(self, value: Any) -> dict[str, Any]:
        if self.trusted and _is_forbidden_export(value):
            raise TypeError(f"a {type(value).__name__} cannot be passed to student code")
        if not self.trusted and isinstance(value, types.ModuleType):
            raise TooLarge("a module cannot be graded")
        rid = self._next_export
        self._next_export += 1
        self.exports[rid] = value
        return {"ref": rid, "type": type(value).__name__[:100], "callable": callable(value)}

    def enc(self, value: Any, enc: _Enc, depth: int = 0) -> Any:
        enc.nodes += 1
        if enc.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise TooLarge("the value is too large or too deeply nested to grade")
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            enc.bytes += len(value)
            if enc.bytes > MAX_MESSAGE:
                raise TooLarge("text too large to grade")
            return str(value)
        if isinstance(value, int):
            return int(value) if abs(value) < 2**62 else {"bigint": str(int(value))}
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"float": repr(float(value))}
        if isinstance(value, Remote) and value._link is self:
            return {"back": value._rid}
        if isinstance(value, torch.Tensor):
            payload = _tensor_payload(value, enc)
            if enc.collect:
                enc.tensors.append(value)
            if enc.grad_outputs is not None and payload["rg"]:
                payload["out"] = len(enc.grad_outputs)
                enc.grad_outputs.append(value)
            return payload
        if isinstance(value, np.ndarray) and value.dtype.kind in _NUMPY_KINDS and not value.dtype.hasobject:
            if enc.collect:
                enc.arrays.append(value)
            return _array_payload(value, enc)
        if isinstance(value, np.generic) and value.dtype.kind in _NUMPY_KINDS:
            return {"npscalar": value.dtype.str, "data": _b64(value.tobytes())}
        if isinstance(value, torch.Generator):
            if enc.collect:
                enc.generators.append(value)
            return {"generator": _b64(value.get_state().numpy().tobytes())}
        if isinstance(value, torch.dtype):
            return {"dtype": str(value).removeprefix("torch.")}
        if isinstance(value, torch.Size):
            return {"size": [int(v) for v in value]}
        if isinstance(value, tuple):
            return {"tuple": [self.enc(item, enc, depth + 1) for item in value]}
        if isinstance(value, list):
            return {"list": [self.enc(item, enc, depth + 1) for item in value]}
        if isinstance(value, dict):
            return {"dict": [[self.enc(k, enc, depth + 1), self.enc(v, enc, depth + 1)] for k, v in value.items()]}
        if isinstance(value, complex):
            return {"complex": [value.real, value.imag]}
        if isinstance(value, bytes):
            enc.bytes += len(value)
            return {"bytes": _b64(value)}
        if isinstance(value, slice):
            return {"slice": [self.enc(value.start, enc, depth + 1), self.enc(value.stop, enc, depth + 1),
                              self.enc(value.step, enc, depth + 1)]}
        if value is Ellipsis:
            return {"ellipsis": True}
        if isinstance(value, torch.device):
            return {"device": str(value)}
        return self.export(value)

    def dec(self, data: Any, dec: _Dec, depth: int = 0) -> Any:
        dec.nodes += 1
        if dec.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise self._protocol("too large")
        if data is None or isinstance(data, bool | str):
            return data
        if isinstance(data, int):
            return data
        if isinstance(data, float):
            return data
        if not isinstance(data, dict) or len(data) == 0:
            raise self._protocol("bad value")
        try:
            return self._dec_tagged(data, dec, depth)
        except ProtocolError as error:
            raise self._protocol(str(error)) from None
        except Lost:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError, RuntimeError) as error:
            raise self._protocol(f"bad value ({type(error).__name__})") from None

    def _dec_tagged(self, data: dict[str, Any], dec: _Dec, depth: int) -> Any:
        if "tensor" in data:
            if dec.grad_link is not None:   # worker side, a returned tensor
                tensor = _tensor_from(data, requires_grad=False)
                if data.get("rg") is True and type(data.get("out")) is int and \
                        (tensor.is_floating_point() or tensor.is_complex()):
                    link, call_id, inputs = dec.grad_link
                    tensor = _attach_remote_grad(link, call_id, data["out"], tensor, inputs)
                return tensor
            tensor = _tensor_from(data)
            if dec.collect:
                dec.tensors.append(tensor)
            return tensor
        if "ndarray" in data:
            array = _array_from(data)
            if dec.collect:
                dec.arrays.append(array)
            return array
        if "npscalar" in data:
            dtype = np.dtype(data["npscalar"])
            raw = _unb64(data.get("data"))
            if dtype.kind not in _NUMPY_KINDS or dtype.hasobject or len(raw) != dtype.itemsize:
                raise ProtocolError("bad numpy scalar")
            return np.frombuffer(raw, dtype=dtype)[0]
        if "generator" in data:
            generator = torch.Generator()
            generator.set_state(torch.frombuffer(bytearray(_unb64(data["generator"])), dtype=torch.uint8).clone())
            if dec.collect:
                dec.generators.append(generator)
            return generator
        if "tuple" in data or "list" in data:
            items = data.get("tuple", data.get("list"))
            if not isinstance(items, list):
                raise ProtocolError("bad sequence")
            values = [self.dec(item, dec, depth + 1) for item in items]
            return tuple(values) if "tuple" in data else values
        if "dict" in data:
            pairs = data["dict"]
            if not isinstance(pairs, list):
                raise ProtocolError("bad dict")
            result = {}
            for pair in pairs:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ProtocolError("bad dict item")
                key = self.dec(pair[0], dec, depth + 1)
                if isinstance(key, list | dict | Remote | torch.Tensor | np.ndarray):
                    raise ProtocolError("unhashable dict key")
                result[key] = self.dec(pair[1], dec, depth + 1)
            return result
        if "bigint" in data:
            text = data["bigint"]
            if not isinstance(text, str) or len(text) > 4000:
                raise ProtocolError("bad int")
            return int(text)
        if "float" in data:
            if data["float"] not in ("nan", "inf", "-inf"):
                raise ProtocolError("bad float")
            return float(data["float"])
        if "dtype" in data:
            if data["dtype"] not in _TORCH_DTYPES:
                raise ProtocolError("bad dtype")
            return _TORCH_DTYPES[data["dtype"]]
        if "size" in data:
            if not isinstance(data["size"], list) or not all(type(n) is int for n in data["size"]):
                raise ProtocolError("bad size")
            return torch.Size(data["size"])
        if "complex" in data:
            real, imag = data["complex"]
            return complex(float(real), float(imag))
        if "bytes" in data:
            return _unb64(data["bytes"])
        if "slice" in data:
            start, stop, step = (self.dec(item, dec, depth + 1) for item in data["slice"])
            return slice(start, stop, step)
        if "ellipsis" in data:
            return Ellipsis
        if "device" in data:
            if data["device"] != "cpu":
                raise ProtocolError("only cpu tensors are graded")
            return torch.device("cpu")
        if "back" in data:
            rid = data["back"]
            if type(rid) is not int or rid not in self.exports:
                raise ProtocolError("unknown reference")
            return self.exports[rid]
        if "ref" in data:
            rid = data["ref"]
            if type(rid) is not int:
                raise ProtocolError("bad reference")
            if not dec.allow_foreign_refs:
                raise TypeError("student objects cannot be passed into the grader's objects")
            return Remote(self, rid, str(data.get("type", "object"))[:100], data.get("callable") is True)
        raise ProtocolError("unknown value")

    # -- calls ------------------------------------------------------------------------------------
    def call_remote(self, remote: Remote, args: tuple, kwargs: dict) -> Any:
        if not self.trusted:  # student side: a call into an object of the grader (an env, a policy)
            try:
                payload = {"target": remote._rid, "args": self.enc(list(args), _Enc()),
                           "kwargs": self.enc(dict(kwargs), _Enc())}
            except TooLarge as error:
                raise ValueError(str(error)) from None
            return self._answer(self.request("call", payload))
        # grading worker: the check calls the student's function
        enc = _Enc(collect=True)
        try:
            payload = {"target": remote._rid, "args": self.enc(list(args), enc), "kwargs": self.enc(dict(kwargs), enc),
                       "rng": _rng_get()}
        except TooLarge as error:
            raise ValueError(f"the check's arguments cannot be sent: {error}") from None
        response = self.request("call", payload)
        if "err" in response:
            self._raise_remote(response["err"])
        result = response.get("ok")
        if not isinstance(result, dict):
            raise self._protocol("bad call result")
        try:
            self._apply_side_effects(result, enc)
        except (ProtocolError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
            raise self._protocol(f"bad side effects ({error})") from None
        call_id = result.get("call")
        if type(call_id) is not int:
            raise self._protocol("bad call id")
        inputs = [tensor for tensor in enc.tensors if tensor.requires_grad]
        return self.dec(result.get("value"), _Dec(grad_link=(self, call_id, inputs)))

    def _apply_side_effects(self, result: dict[str, Any], enc: _Enc) -> None:
        """In-place changes of the arguments, generator states and the global RNGs, as the function left them."""
        for index, payload in result.get("mutated", []):
            if type(index) is int and 0 <= index < len(enc.tensors):
                target = enc.tensors[index]
                new = _tensor_from(payload, requires_grad=False)
                with torch.no_grad():
                    if new.shape == target.shape and new.dtype == target.dtype:
                        target.copy_(new)
                    else:
                        target.data = new.to(target.dtype) if target.is_floating_point() else new
            else:
                raise ProtocolError("bad mutated index")
        for index, payload in result.get("mutated_arrays", []):
            if type(index) is int and 0 <= index < len(enc.arrays):
                target, new = enc.arrays[index], _array_from(payload)
                if new.shape == target.shape and target.flags.writeable:
                    np.copyto(target, new, casting="unsafe")
            else:
                raise ProtocolError("bad mutated array index")
        for index, state in result.get("generators", []):
            if type(index) is int and 0 <= index < len(enc.generators):
                enc.generators[index].set_state(torch.frombuffer(bytearray(_unb64(state)), dtype=torch.uint8).clone())
            else:
                raise ProtocolError("bad generator index")
        if "rng" in result:
            _rng_set(result["rng"])

    def vjp(self, call_id: int, out_index: int, grad_output: torch.Tensor, count: int) -> list[torch.Tensor | None]:
        response = self.request("vjp", {"call": call_id, "out": out_index,
                                        "grad": self.enc(grad_output.detach(), _Enc())})
        grads = self._answer(response)
        if not isinstance(grads, list) or len(grads) != count or \
                not all(g is None or isinstance(g, torch.Tensor) for g in grads):
            raise self._protocol("bad gradients")
        return grads

    # -- handlers for requests from the other side --------------------------------------------------
    def _target(self, message: dict[str, Any]) -> Any:
        rid = message.get("target")
        if type(rid) is not int or rid not in self.exports:
            raise ProtocolError("unknown reference")
        return self.exports[rid]

    def _h_getattr(self, message: dict[str, Any]) -> Any:
        name = message.get("name")
        if not isinstance(name, str) or name.startswith("_"):
            raise AttributeError(f"attribute {name!r} is not available")
        return getattr(self._target(message), name)

    def _h_item(self, message: dict[str, Any]) -> Any:
        key = self.dec(message.get("key"), _Dec(allow_foreign_refs=False))
        return self._target(message)[key]

    def _h_len(self, message: dict[str, Any]) -> Any:
        return len(self._target(message))

    def _h_list(self, message: dict[str, Any]) -> Any:
        items = []
        for item in self._target(message):
            items.append(item)
            if len(items) > 100_000:
                raise ValueError("too many items")
        return items

    def _h_call(self, message: dict[str, Any]) -> Any:
        target = self._target(message)
        dec = _Dec(allow_foreign_refs=False)
        args = self.dec(message.get("args"), dec)
        kwargs = self.dec(message.get("kwargs"), dec)
        if not isinstance(args, list) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ProtocolError("bad call")
        return target(*args, **kwargs)


class _RemoteGrad(torch.autograd.Function):
    """Connects a tensor returned by the student's function to the check's inputs of that call.

    Backward asks the student process for the vector-Jacobian product of the same output with the
    same grad_output: gradients are exactly those the student's code would give in a notebook.
    """

    @staticmethod
    def forward(ctx, link: Link, call_id: int, out_index: int, value: torch.Tensor, *inputs: torch.Tensor):
        ctx.link, ctx.call_id, ctx.out_index, ctx.count = link, call_id, out_index, len(inputs)
        ctx.specs = [(tuple(t.shape), t.dtype) for t in inputs]
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        try:
            grads = ctx.link.vjp(ctx.call_id, ctx.out_index, grad_output, ctx.count)
        except Lost as lost:
            raise RuntimeError(f"the student process is gone: {lost.reason}") from None
        except StudentError as error:
            raise RuntimeError(f"backpropagating through your output failed in your code:\n{error}") from None
        checked = []
        for grad, (shape, dtype) in zip(grads, ctx.specs):
            if grad is not None and (tuple(grad.shape) != shape or grad.dtype != dtype):
                grad = None if grad.numel() != math.prod(shape) else grad.reshape(shape).to(dtype)
            checked.append(grad)
        return (None, None, None, None, *checked)


def _attach_remote_grad(link: Link, call_id: int, out_index: int, value: torch.Tensor,
                        inputs: list[torch.Tensor]) -> torch.Tensor:
    if not inputs:
        return value.requires_grad_(True)
    return _RemoteGrad.apply(link, call_id, out_index, value, *inputs)


# --------------------------------------------------------------------------------------------------
# The student process
# --------------------------------------------------------------------------------------------------

def _noop_display(*args: Any, **kwargs: Any) -> None:
    """Stand-in for IPython's display() in the student process (output is not graded)."""


class StudentServer:
    """Runs in the student process: executes cells, answers the worker's calls into the student's objects."""

    def __init__(self, link: Link):
        self.link = link
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "display": _noop_display}
        self.calls: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self._next_call = 1
        link.handlers.update({"exec": self._h_exec, "lookup": self._h_lookup, "call": self._h_call_student,
                              "vjp": self._h_vjp, "release": self._h_release, "ping": lambda message: "pong"})

    def serve_forever(self) -> None:
        while True:
            message = self.link.recv()
            if message.get("k") != "q":
                os._exit(0)
            self.link.serve(message)

    def _h_exec(self, message: dict[str, Any]) -> Any:
        source, filename = message.get("source"), message.get("filename")
        if not isinstance(source, str) or not isinstance(filename, str):
            raise ProtocolError("bad exec")
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            code = compile(source, filename, "exec", dont_inherit=True)
            exec(code, self.ns)  # noqa: S102 - this is the student's answer cell, in the sandbox
        except BaseException as error:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too: the cell failed
            return {"error": _student_traceback(error)}
        finally:
            _flush_output()
        return {}

    def _h_lookup(self, message: dict[str, Any]) -> Any:
        names = message.get("names")
        if not isinstance(names, list):
            raise ProtocolError("bad lookup")
        found = {}
        for name in names:
            if isinstance(name, str) and name in self.ns and not isinstance(self.ns[name], types.ModuleType):
                found[name] = self.ns[name]
        return found

    def _h_call_student(self, message: dict[str, Any]) -> Any:
        target = self.link._target(message)
        if "rng" in message:
            _rng_set(message["rng"])
        dec = _Dec(collect=True)
        args = self.link.dec(message.get("args"), dec)
        kwargs = self.link.dec(message.get("kwargs"), dec)
        before = [tensor.detach().clone() for tensor in dec.tensors]
        arrays_before = [array.copy() for array in dec.arrays]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = target(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - their exception, whatever it is, is reported
            _flush_output()
            raise _Reported(error) from None
        _flush_output()
        leaves = [tensor for tensor in dec.tensors if tensor.requires_grad]
        outputs: list[torch.Tensor] = []
        try:
            encoded = self.link.enc(value, _Enc(grad_outputs=outputs))
        except TooLarge as error:
            raise _Reported(ValueError(f"your function's return value cannot be graded: {error}")) from None
        call_id = self._next_call
        self._next_call += 1
        self.calls[call_id] = (leaves, outputs)
        mutated = []
        for index, (tensor, old) in enumerate(zip(dec.tensors, before)):
            now = tensor.detach()
            if now.shape != old.shape or now.dtype != old.dtype or not torch.equal(now, old):
                mutated.append([index, _tensor_payload(now, _Enc())])
        mutated_arrays = [[index, _array_payload(array, _Enc())]
                          for index, (array, old) in enumerate(zip(dec.arrays, arrays_before))
                          if array.shape != old.shape or not np.array_equal(array, old, equal_nan=True)]
        generators = [[index, _b64(generator.get_state().numpy().tobytes())]
                      for index, generator in enumerate(dec.generators)]
        return _Raw({"value": encoded, "call": call_id, "mutated": mutated, "mutated_arrays": mutated_arrays,
                     "generators": generators, "rng": _rng_get()})

    def _h_vjp(self, message: dict[str, Any]) -> Any:
        call = self.calls.get(message.get("call"))
        out = message.get("out")
        if call is None or type(out) is not int or not 0 <= out < len(call[1]):
            raise ProtocolError("unknown call")
        leaves, outputs = call
        grad_output = self.link.dec(message.get("grad"), _Dec())
        if not leaves:
            return []
        try:
            grads = torch.autograd.grad([outputs[out]], leaves, [grad_output.to(outputs[out].dtype)],
                                        retain_graph=True, allow_unused=True)
        except BaseException as error:  # noqa: BLE001
            raise _Reported(error) from None
        return [None if grad is None else grad.detach() for grad in grads]

    def _h_release(self, message: dict[str, Any]) -> Any:
        self.calls.clear()
        self.link.exports.clear()
        _flush_output()
        with contextlib.suppress(OSError):  # the output limit counts per exercise
            os.ftruncate(1, 0)
            os.lseek(1, 0, os.SEEK_SET)
        return None


class _Raw:
    """A handler result that is already encoded."""

    def __init__(self, data: Any):
        self.data = data


class _Reported(Exception):
    """An exception of the student's code, to be reported with its traceback."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _student_traceback(error: BaseException) -> str:
    """Their traceback, without the grading machinery's frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(error), error, tb))
    except BaseException:  # noqa: BLE001 - a broken __str__ of their exception
        text = f"{type(error).__name__} (its message could not be shown)\n"
    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        text += "(your code printed or wrote more output than the grader allows)\n"
    if isinstance(error, SystemExit):
        text += "(sys.exit() or exit() ends the notebook's kernel; an answer cell must not call it)\n"
    if tb is None and isinstance(error, TypeError):
        text += "(raised when the check called your function: check its parameters)\n"
    return _short(text)


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()


# Student-side serving: results already encoded (_Raw) and student exceptions (_Reported) need care.
_original_serve = Link.serve


def _student_serve(self: Link, message: dict[str, Any]) -> None:
    handler = self.handlers.get(message.get("op")) if isinstance(message.get("op"), str) else None
    number = message.get("id")
    if handler is None or type(number) is not int:
        os._exit(0)
    try:
        value = handler(message)
        if isinstance(value, _Raw):
            response = {"k": "r", "id": number, "ok": value.data}
        else:
            response = {"k": "r", "id": number, "ok": self.enc(value, _Enc())}
    except _Reported as reported:
        error = reported.error
        response = {"k": "r", "id": number, "err": {"type": type(error).__name__,
                                                    "message": _safe_str(error),
                                                    "traceback": _student_traceback(error)}}
    except BaseException as error:  # noqa: BLE001
        response = {"k": "r", "id": number, "err": {"type": type(error).__name__, "message": _safe_str(error),
                                                    "traceback": _student_traceback(error)}}
    try:
        self.send(response)
    except TooLarge:
        self.send({"k": "r", "id": number, "err": {"type": "ValueError", "message": "result too large",
                                                   "traceback": "ValueError: your result is too large to grade\n"}})


def _safe_str(error: BaseException) -> str:
    try:
        return _short(str(error), 2000)
    except BaseException:  # noqa: BLE001
        return type(error).__name__


# --------------------------------------------------------------------------------------------------
# Sandboxing (Linux namespaces through libc; everything else: resource limits only)
# --------------------------------------------------------------------------------------------------

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME = 1024, 2048, 1 << 21
_MOUNT_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC, "noatime": _MS_NOATIME,
                "nodiratime": _MS_NODIRATIME, "relatime": _MS_RELATIME}
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36

_NOBODY = 65534
SANDBOX = "sandbox"          # namespaces + read-only filesystem + limits
LIMITS_ONLY = "limits-only"  # resource limits and process groups only


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            _libc().prctl(option, value, 0, 0, 0)


def _write_file(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _mount(libc: Any, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), ctypes.c_ulong(flags),
                      data and data.encode()), f"mount {target}")


def _unescape_mount_path(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _enter_sandbox(sock_fd: int, scratch_mb: int) -> None:
    """Move this (single-threaded) process into fresh namespaces with a read-only filesystem.

    Returns in the sandboxed grandchild (PID 1 of a new PID namespace); the intermediate process
    waits for it and exits with its status, so the worker sees one process that ends with it.
    """
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS),
           "unshare")
    _write_file("/proc/self/setgroups", "deny")
    _write_file("/proc/self/uid_map", f"0 {uid} 1")
    _write_file("/proc/self/gid_map", f"0 {gid} 1")
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    with open("/proc/self/mountinfo") as handle:
        mounts = [(_unescape_mount_path(line.split()[4]), line.split()[5].split(",")) for line in handle]
    for mount_point, options in mounts:
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        for option in options:
            flags |= _MOUNT_FLAGS.get(option, 0)
        try:
            _mount(libc, None, mount_point, None, flags)
        except OSError:
            if not mount_point.startswith(("/proc", "/sys", "/dev")):
                raise
    _mount(libc, "tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={int(scratch_mb)}m,mode=1777")
    child = os.fork()
    if child:
        os.close(sock_fd)
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()  # its own process group: kill(0, ...) cannot reach the intermediate process outside
    _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    # A nested user + mount namespace locks every mount: root of the inner namespace cannot undo read-only.
    _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare (lock)")
    _write_file("/proc/self/setgroups", "deny")
    _write_file("/proc/self/uid_map", "0 0 1")
    _write_file("/proc/self/gid_map", "0 0 1")


def _close_fds_except(keep: int) -> None:
    try:
        max_fd = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        max_fd = 4096
    max_fd = min(max_fd, 65536)
    os.closerange(3, keep)
    os.closerange(keep + 1, max_fd)


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _set_limit(name: str, value: int) -> None:
    if resource is None:
        return
    kind = getattr(resource, name, None)
    if kind is None:
        return
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))


def _student_main(sock: socket.socket, config: dict[str, Any]) -> None:
    """Body of the forked student process; never returns."""
    code = 70
    try:
        os.setsid()
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for number in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # too much output: the write fails (EFBIG)
        sock_fd = sock.fileno()
        isolation = config["isolation"]
        if isolation == SANDBOX:
            _enter_sandbox(sock_fd, config["limits"]["scratch_mb"])
            scratch = "/tmp"
        else:
            scratch = config["scratch"]
        _close_fds_except(sock_fd)
        os.chdir(scratch)
        null = os.open(os.devnull, os.O_RDONLY)
        output = os.open(os.path.join(scratch, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if isolation != SANDBOX and os.geteuid() == 0:
            # Without namespaces, root would be all-powerful: run as nobody, who cannot write the course,
            # the gradebook or the submissions (unless world-writable) nor signal the grader.
            os.chown(scratch, _NOBODY, _NOBODY)
            os.fchown(output, _NOBODY, _NOBODY)
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
        os.dup2(null, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(null)
        os.close(output)
        limits = config["limits"]
        _set_limit("RLIMIT_CORE", 0)
        _set_limit("RLIMIT_FSIZE", int(limits["output_mb"] * 2**20))
        _set_limit("RLIMIT_NOFILE", 256)
        _set_limit("RLIMIT_CPU", int(limits["submission_s"]) + 10)
        if isolation != SANDBOX:
            _set_limit("RLIMIT_NPROC", 0)    # no new processes or threads (ignored for root)
        if sys.platform.startswith("linux"):
            _set_limit("RLIMIT_AS", _vm_size() + int(limits["memory_mb"] * 2**20))
        os.environ["HOME"] = scratch
        tempfile.tempdir = scratch
        _seed_everything(0)
        link = Link(sock, trusted=False)
        link.serve = types.MethodType(_student_serve, link)
        server = StudentServer(link)
        link.send({"k": "hello", "isolation": isolation, "pid": os.getpid()})
        server.serve_forever()
        code = 0
    except BaseException:  # noqa: BLE001 - nothing can be reported from here
        code = 71
    finally:
        os._exit(code)


def probe_sandbox(scratch_mb: int = 16) -> tuple[str, str]:
    """(mode, detail): whether the namespace sandbox works on this machine, tried in a throwaway child."""
    if not sys.platform.startswith("linux"):
        return LIMITS_ONLY, f"no namespace sandbox on {sys.platform}"
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        try:
            os.setsid()
            _enter_sandbox(theirs.fileno(), scratch_mb)
            ok = True
            try:
                with open("/etc/pgcourse-grade-probe", "w"):
                    ok = False
            except OSError:
                pass
            theirs.sendall(b"ok" if ok else b"rw")
        except BaseException as error:  # noqa: BLE001
            with contextlib.suppress(BaseException):
                theirs.sendall(f"fail {error}".encode()[:500])
        os._exit(0)
    theirs.close()
    ours.settimeout(20)
    try:
        answer = ours.recv(600).decode(errors="replace")
    except OSError as error:
        answer = f"fail {error}"
    finally:
        ours.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    if answer == "ok":
        return SANDBOX, "namespaces: read-only filesystem, private /tmp, no network, own PID namespace"
    if answer == "rw":
        return LIMITS_ONLY, "the sandbox could not make the filesystem read-only"
    return LIMITS_ONLY, f"namespace sandbox unavailable ({answer.removeprefix('fail ').strip() or 'no answer'})"


class StudentProcess:
    """The worker's handle on one forked student process."""

    def __init__(self, config: dict[str, Any], deadline: float):
        self.scratch = None
        if config["isolation"] != SANDBOX:
            self.scratch = tempfile.mkdtemp(prefix="pgcourse-grade-")
            config = {**config, "scratch": self.scratch}
        ours, theirs = socket.socketpair()
        _flush_output()
        gc.freeze()  # the child's garbage collector then skips the (many) objects of the warm imports
        pid = os.fork()
        if pid == 0:
            ours.close()
            _student_main(theirs, config)
        theirs.close()
        self.pid = pid
        self.link = Link(ours, trusted=True)
        self.status: int | None = None
        self.link.deadline = deadline
        self.link.timeout_reason = "the student process did not start in time"
        hello = self.link.recv()
        if hello.get("k") != "hello":
            raise self.link._fail("protocol", "the student process did not start")
        self.link.deadline = None

    def alive(self) -> bool:
        return self.status is None and self.link.lost is None

    def end(self, wait: float = 0.0) -> int | None:
        """Stop the process (its whole group; in the sandbox its PID namespace goes with it)."""
        if self.status is None:
            if wait > 0:
                stop = time.monotonic() + wait
                while time.monotonic() < stop:
                    done, status = os.waitpid(self.pid, os.WNOHANG)
                    if done:
                        self.status = os.waitstatus_to_exitcode(status)
                        break
                    time.sleep(0.01)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            if self.status is None:
                with contextlib.suppress(ChildProcessError):
                    _, status = os.waitpid(self.pid, 0)
                    self.status = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            self.link.sock.close()
        _kill_orphans()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
        return self.status


def _kill_orphans() -> None:
    """Kill processes that student code left behind and that were re-parented to this worker (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    me = os.getpid()
    for _ in range(3):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
                parent = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == me:
                found = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(entry), 0)
        if not found:
            return


def describe_exit(status: int | None, limits: dict[str, Any]) -> str:
    if status is None:
        return "the student process ended"
    if status >= 128 or status < 0:
        number = status - 128 if status >= 128 else -status
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        what = {"SIGSEGV": "crashed with a segmentation fault (SIGSEGV)",
                "SIGBUS": "crashed with a bus error (SIGBUS)",
                "SIGABRT": "aborted (SIGABRT)",
                "SIGFPE": "crashed with an arithmetic fault (SIGFPE)",
                "SIGXCPU": "used up its CPU time",
                "SIGXFSZ": f"printed or wrote more than {limits['output_mb']} MB",
                "SIGKILL": "was killed (SIGKILL), e.g. for using too much memory"}.get(name, f"was killed by {name}")
        return f"the process running your code {what}"
    return f"your code ended the process (exit status {status}), e.g. with os._exit() or a crash"


# --------------------------------------------------------------------------------------------------
# The grading worker
# --------------------------------------------------------------------------------------------------

def free_names(source: str) -> list[str]:
    """Names a check cell reads that it does not bind itself at top level (candidates from the student)."""
    tree = ast.parse(source)
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    bound.update(node.id for node in _top_level_targets(tree))
    loads = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return sorted(loads - bound - set(dir(builtins)))


def _top_level_targets(tree: ast.Module) -> list[ast.Name]:
    targets: list[ast.Name] = []
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For | ast.With):
            for child in ast.walk(node):
                if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                    targets.append(child)
    return targets


class _Deadline:
    """SIGALRM safety net for the worker's own (trusted but possibly slow) work in a check."""

    def __init__(self, link: Link | None, at: float):
        self.link, self.at = link, at

    def _fire(self, signum: int, frame: Any) -> None:
        lost = Lost("timeout", "time limit")
        if self.link is not None:
            self.link.lost = self.link.lost or lost
        raise lost

    def __enter__(self) -> _Deadline:
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.at - time.monotonic()))
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


_GRADER_FRAMES = re.compile(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*?pgcourse\._gradeworker\.StudentError: ")


def _clean_feedback(message: str) -> str:
    """Drop the grading worker's own frames from a check's report of the student's exception."""
    return _GRADER_FRAMES.sub("", message)


def _result(points: float, status: str, feedback: str) -> dict[str, Any]:
    return {"points": points, "status": status, "feedback": _short(feedback.strip(), 6000)}


class Worker:
    """The trusted grading worker: grades submissions one at a time, each in forked student processes."""



    def __init__(self, isolation: str = "auto"):
        if isolation == "auto":
            self.isolation, self.isolation_detail = probe_sandbox()
        elif isolation == SANDBOX:
            self.isolation, self.isolation_detail = probe_sandbox()
            if self.isolation != SANDBOX:
                raise RuntimeError(f"the sandbox was required but is not available: {self.isolation_detail}")
        else:
            self.isolation, self.isolation_detail = LIMITS_ONLY, "sandbox switched off"
        self._contexts: dict[str, dict[str, Any]] = {}

    def _context(self, course: dict[str, Any]) -> dict[str, Any]:
        key = course["key"]
        if key not in self._contexts:
            namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
            for label, source in course["context"]:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    exec(compile(source, label, "exec", dont_inherit=True), namespace)  # noqa: S102 - course code
            self._contexts[key] = namespace
        return self._contexts[key]

    def grade(self, course: dict[str, Any], answers: dict[str, list[str]], limits: dict[str, Any]) -> dict[str, Any]:
        session = _Session(self, course, answers, limits)
        try:
            results = session.run()
        finally:
            session.close()
        return {"exercises": results, "isolation": self.isolation}


class _Session:
    """Grading of one submission: exercises in notebook order, restarting the student process when needed."""

    def __init__(self, worker: Worker, course: dict[str, Any], answers: dict[str, list[str]], limits: dict[str, Any]):
        self.worker, self.course, self.answers, self.limits = worker, course, answers, limits
        self.base = worker._context(course)
        self.ns = dict(self.base)
        self.trusted_names = set(self.base)      # defined by the course (setup and check cells)
        self.inserted: dict[str, Any] = {}       # names the student's process provided, as inserted
        self.student: StudentProcess | None = None
        self.executed: set[str] = set()
        self.poisoned: set[str] = set()
        self.start = time.monotonic()
        self.submission_deadline = self.start + float(limits["submission_s"])
        self.config = {"isolation": worker.isolation, "limits": limits}

    def close(self) -> None:
        if self.student is not None:
            self.student.end()
            self.student = None
        self.ns.clear()

    def run(self) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        for position, exercise in enumerate(self.course["exercises"]):
            started = time.monotonic()
            if started >= self.submission_deadline:
                results[exercise["id"]] = _result(0, "timeout", f"not graded: the submission used up its time limit "
                                                               f"of {self.limits['submission_s']:g} s")
                continue
            results[exercise["id"]] = self._grade(position, exercise)
        return results

    # -- the student process ------------------------------------------------------------------------
    def _lose(self, lost: Lost) -> str:
        """Stop the student process after ``lost``; the reason for the feedback."""
        student, self.student = self.student, None
        self.executed = set()
        if student is None:
            return lost.reason
        status = student.end(wait=0.3 if lost.kind in ("crashed", "protocol") else 0.0)
        if lost.kind == "crashed":
            return describe_exit(status, self.limits)
        return lost.reason

    def _start(self) -> None:
        deadline = min(time.monotonic() + 30.0, self.submission_deadline)
        self.student = StudentProcess(self.config, deadline)
        self.executed = set()
        link = self.student.link
        link.deadline, link.timeout_reason = deadline, "the course's setup cells did not finish in time"
        for label, source in self.course["context"]:
            answer = link._answer(link.request("exec", {"source": source, "filename": label}))
            if isinstance(answer, dict) and answer.get("error"):
                raise RuntimeError(f"the course's setup cell {label} failed in the student process:\n"
                                   f"{answer['error']}")
        link.deadline = None

    def _exec_answer(self, grade_id: str, deadline: float, reason: str) -> str | None:
        """Run the student's answer cell(s) ``grade_id``; their exception text, if any."""
        link = self.student.link
        link.deadline, link.timeout_reason = deadline, reason
        errors = []
        for number, source in enumerate(self.answers[grade_id]):
            label = f"<answer cell {grade_id}>" if len(self.answers[grade_id]) == 1 else \
                f"<answer cell {grade_id} #{number + 1}>"
            try:
                answer = link._answer(link.request("exec", {"source": source, "filename": label}))
                link.request("ping", {})  # a death the cell caused a moment after it returned is its own
            except Lost:
                self.poisoned.add(grade_id)
                raise
            if isinstance(answer, dict) and isinstance(answer.get("error"), str):
                errors.append(answer["error"])
        self.executed.add(grade_id)
        link.deadline = None
        return "\n".join(errors) or None

    def _ensure_student(self, position: int) -> None:
        """A live student process that has run the answer cells of every exercise before this one."""
        earlier = [grade_id for exercise in self.course["exercises"][:position] for grade_id in exercise["answer_ids"]]
        while True:
            if self.student is None:
                self._start()
            deadline = min(time.monotonic() + float(self.limits["exercise_s"]), self.submission_deadline)
            try:
                for grade_id in earlier:
                    if grade_id in self.answers and grade_id not in self.poisoned and grade_id not in self.executed:
                        self._exec_answer(grade_id, deadline, "re-running your earlier answer cells took too long")
                return
            except Lost as lost:
                self._lose(lost)
                if time.monotonic() >= self.submission_deadline:
                    raise

    # -- one exercise --------------------------------------------------------------------------------
    def _grade(self, position: int, exercise: dict[str, Any]) -> dict[str, Any]:
        answer_ids = exercise["answer_ids"]
        present = [grade_id for grade_id in answer_ids if grade_id in self.answers]
        if answer_ids and not present:
            cells = ", ".join(answer_ids)
            return _result(0, "missing", f"answer cell {cells} is missing from the notebook (deleted, or its "
                                         "metadata was changed): there is nothing to grade")
        limit = float(self.limits["exercise_s"])
        try:
            self._ensure_student(position)
            deadline = min(time.monotonic() + limit, self.submission_deadline)
            reason = (f"time limit: your code ran longer than {limit:g} s" if deadline < self.submission_deadline
                      else f"time limit: the submission used up its {self.limits['submission_s']:g} s")
            errors = []
            for grade_id in present:
                error = self._exec_answer(grade_id, deadline, reason)
                if error:
                    errors.append(f"your answer cell {grade_id} raised an exception when it ran:\n{error}")
            if errors:
                return _result(0, "error", "\n".join(errors))
            return self._check(exercise, deadline, reason)
        except Lost as lost:
            explanation = self._lose(lost)
            status = "timeout" if lost.kind == "timeout" else "crashed"
            return _result(0, status, explanation)
        except Exception as error:  # noqa: BLE001 - a problem of the grading itself: reported, then a fresh start
            if self.student is not None:
                self._lose(Lost("protocol", "grading problem"))
            return _result(0, "error", f"grading problem (not caused by your answer, tell your teacher): "
                                       f"{type(error).__name__}: {error}")
        finally:
            self._release()

    def _release(self) -> None:
        if self.student is None:
            return
        link = self.student.link
        try:
            if link.lost is not None:
                raise link.lost
            link.deadline, link.timeout_reason = time.monotonic() + 10.0, "the student process stopped answering"
            link.request("release", {})
            link.deadline = None
            link.exports.clear()
        except Lost as lost:
            self._lose(lost)

    def _check(self, exercise: dict[str, Any], deadline: float, reason: str) -> dict[str, Any]:
        link = self.student.link
        wanted = [name for name in free_names(exercise["check_source"]) if name not in self.trusted_names]
        link.deadline, link.timeout_reason = deadline, reason
        found = link._answer(link.request("lookup", {"names": wanted})) if wanted else {}
        if not isinstance(found, dict):
            raise link._fail("protocol", "the student process answered a lookup with something else")
        for name in set(wanted) | set(self.inserted):   # nothing stale from an earlier exercise
            if name not in self.trusted_names:
                self.ns.pop(name, None)
        self.inserted = {}
        for name, value in found.items():
            if isinstance(name, str) and name in wanted:
                self.ns[name] = self.inserted[name] = value
        code = compile(exercise["check_source"], f"<check cell {exercise['check_grade_id']}>", "exec",
                       dont_inherit=True)
        link.last_student_error = None
        _seed_everything(0)
        output = io.StringIO()
        status, feedback = "passed", ""
        with contextlib.ExitStack() as stack:
            stack.enter_context(_Deadline(link, deadline + ALARM_GRACE))
            stack.enter_context(contextlib.redirect_stdout(output))
            stack.enter_context(contextlib.redirect_stderr(output))
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            try:
                exec(code, self.ns)  # noqa: S102 - the course's own check cell, in the trusted worker
            except Lost:
                raise
            except AssertionError as error:
                status, feedback = "failed", str(error) or "the check failed (AssertionError)"
            except NotImplementedError:
                status, feedback = "failed", "not implemented yet: replace `raise NotImplementedError()` with your code"
            except StudentError as error:
                status, feedback = "error", f"your code raised an exception:\n{error}"
            except NameError as error:
                status, feedback = "error", (f"{error}: your answer cell must define it (was it renamed, or its "
                                             "cell not run?)")
            except Exception as error:  # noqa: BLE001 - LearnerCodeError and any other failure of the check
                name = type(error).__name__
                text = _clean_feedback(str(error))
                if name == "LearnerCodeError":
                    status, feedback = "error", text
                else:
                    status, feedback = "error", f"the check failed with {name}: {text}"
            except BaseException as error:  # noqa: BLE001 - SystemExit/KeyboardInterrupt raised in a check
                status, feedback = "error", f"the check stopped with {type(error).__name__}: {error}"
        if link.lost is not None:
            raise link.lost
        link.deadline = None
        # names the check cell defined become part of the trusted namespace for later checks
        for name, value in list(self.ns.items()):
            if name in self.inserted and value is self.inserted[name]:
                continue
            self.trusted_names.add(name)
            self.inserted.pop(name, None)
        if status == "passed":
            return _result(exercise["points"], "passed", output.getvalue() or "passed")
        return _result(0, status, feedback)


# --------------------------------------------------------------------------------------------------
# Process entry point (spawned by pgcourse.grading)
# --------------------------------------------------------------------------------------------------

def _preload() -> None:
    """Import what checks and course cells use, before any student code exists on this machine's disk
    view of this process (later imports could read files a student process tried to change)."""
    import importlib

    for name in ("gymnasium", "gymnasium.envs.classic_control.cartpole", "gymnasium.envs.classic_control.pendulum",
                 "gymnasium.envs.classic_control.acrobot", "gymnasium.envs.classic_control.mountain_car",
                 "gymnasium.wrappers", "gymnasium.vector", "torch.distributions", "torch.nn.functional",
                 "torch.testing", "numpy.testing", "matplotlib", "matplotlib.pyplot",
                 "pgcourse", "pgcourse.checks", "pgcourse.envs", "pgcourse.networks", "pgcourse.config",
                 "pgcourse.algorithms", "pgcourse.returns", "pgcourse.losses", "pgcourse.diagnostics",
                 "pgcourse.batching", "pgcourse.run", "pgcourse.evaluation", "pgcourse.history", "pgcourse.traps",
                 "pgcourse.plotting", "pgcourse.render", "pgcourse.widgets", "torch.fx.experimental.symbolic_shapes"):
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # What the student process does lazily (a VJP with grad_outputs imports sympy!) is done here once,
    # so that every forked student process starts with it loaded.
    leaf = torch.ones(3, requires_grad=True)
    torch.autograd.grad([leaf * 2.0], [leaf], [torch.ones(3)], retain_graph=True, allow_unused=True)
    torch.autograd.grad((leaf * torch.linspace(0.5, 1.5, 3)).sum(), [leaf], allow_unused=True)
    traceback.format_exception(ValueError, ValueError("warm-up"), None)


def worker_main(fd: int) -> None:
    from multiprocessing.connection import Connection

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    conn = Connection(fd)
    try:
        hello = conn.recv()
        _preload()
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        worker = Worker(hello.get("isolation", "auto"))
        gc.collect()
        gc.freeze()
        conn.send({"op": "ready", "isolation": worker.isolation, "detail": worker.isolation_detail,
                   "pid": os.getpid()})
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message.get("op") == "stop":
                break
            if message.get("op") == "grade":
                try:
                    reply = worker.grade(message["course"], message["answers"], message["limits"])
                    reply.update(op="result", key=message["key"])
                except Exception:  # noqa: BLE001 - a grading failure is reported, the worker stays up
                    reply = {"op": "failure", "key": message["key"], "error": traceback.format_exc()}
                conn.send(reply)
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    except Exception:  # noqa: BLE001
        with contextlib.suppress(Exception):
            conn.send({"op": "crash", "error": traceback.format_exc()})


# Started as: python -c "from pgcourse._gradeworker import worker_main; worker_main(FD)" (not with -m, so
# that this module has one identity, pgcourse._gradeworker, in the worker).
