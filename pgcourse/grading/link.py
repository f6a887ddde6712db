"""One end of the socket between the grading worker and the student process.

:class:`Link` sends and receives the frames of :mod:`pgcourse.grading.wire`, serves the other
side's requests (they may nest: while the worker waits for the student's function, that function
may call back into objects the check passed it) and encodes values: as data where they can be,
else as a reference, a :class:`Remote` on the other side whose public methods and attributes go
back over the socket. A returned tensor that requires grad is connected to the check's inputs by
:class:`_RemoteGrad`, whose backward asks the student process for the vector-Jacobian product.
The same class runs on both sides: ``trusted=True`` in the grading worker, where anything the
student process sends that breaks the protocol ends that process (:class:`Lost`).
"""
from __future__ import annotations

import json
import math
import os
import select
import socket
import time
import types
from typing import Any

import numpy as np
import torch

from .wire import (_HEADER, _NUMPY_KINDS, _TORCH_DTYPES, MAX_DEPTH, MAX_MESSAGE, MAX_NODES, Lost, ProtocolError,
                   StudentError, TooLarge, _array_from, _array_payload, _b64, _Dec, _Enc, _reject_constant,
                   _rng_get, _rng_set, _short, _tensor_from, _tensor_payload, _unb64)


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
