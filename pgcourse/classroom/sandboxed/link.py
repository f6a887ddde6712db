"""One end of the socket between the grading worker and the student process.

:class:`Link` sends and receives the frames of :mod:`pgcourse.classroom.sandboxed.wire` and encodes values as
data only: numbers, strings, tensors and arrays (raw bytes with dtype and shape), generators'
states, containers of those. Nothing else crosses, in either direction: no reference to a live
object, so student code can never reach an object of the grading worker (an environment, a
policy, the check's own state) and the worker never holds an object of the student's.

The worker (``trusted=True``) sends requests; the student process only answers them. The worker
calls the student's functions through :class:`StudentFunction`, a handle that can only be called
(by name, in the student process); a returned tensor that requires grad is connected to the
check's inputs by :class:`_RemoteGrad`, whose backward asks the student process for the
vector-Jacobian product (data in, data out). Anything the student process sends that breaks the
protocol ends that process (:class:`Lost`).
"""
from __future__ import annotations

import json
import math
import os
import select
import socket
import time
from typing import Any

import numpy as np
import torch

from .clock import wall_backstop
from .wire import (_HEADER, _NUMPY_KINDS, _TORCH_DTYPES, MAX_DEPTH, MAX_MESSAGE, MAX_NODES, MAX_RESULT_ELEMENTS, Lost,
                   NotData,
                   ProtocolError, StudentError, TooLarge, _array_from, _array_payload, _b64, _Dec, _Enc, _reject_constant,
                   _rng_get, _rng_set, _short, _tensor_from, _tensor_payload, _unb64)


POLL_S = 0.25  # how often a wait with a deadline looks at the work clock


class StudentFunction:
    """The worker's handle on a function the student defined: it can be called, nothing else.

    The call goes to the student process by name, with the check's arguments as data; the result
    comes back as data (see :meth:`Link.call_student`).
    """

    __slots__ = ("_link", "_name")

    def __init__(self, link: Link, name: str):
        self._link, self._name = link, name

    @property
    def __name__(self) -> str:  # noqa: A003 - what a check prints
        return self._name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._link.call_student(self._name, args, kwargs)

    def play_episode_case(self, env_id: str, controller: str, seed: int) -> dict[str, Any]:
        """One case of the play_episode check, played in the student process (see pgcourse.classroom.sandboxed.episode_cases)."""
        response = self._link.request(
            "episode", {"function": self._name, "env_id": env_id, "controller": controller, "seed": seed})
        try:
            outcome = self._link._answer(response, _Dec(max_elements=MAX_RESULT_ELEMENTS))
        except TooLarge as error:
            raise StudentError(f"ValueError: your function's result cannot be graded: {error}") from None
        if not isinstance(outcome, dict) or not isinstance(outcome.get("stepped_past_end"), bool):
            raise self._link._protocol("bad episode outcome")
        return outcome

    def play_case(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One case of a loop stage, built and played in the student process from ``spec`` (data; see
        :mod:`pgcourse.classroom.sandboxed.loops`): ``{"calls": [...], "counts": ...}`` as data."""
        try:
            payload = self._link.enc(spec, _Enc())
        except TooLarge as error:
            raise ValueError(f"the check's case cannot be sent: {error}") from None
        response = self._link.request("stage", {"function": self._name, "spec": payload})
        try:
            outcome = self._link._answer(response, _Dec(max_elements=MAX_RESULT_ELEMENTS))
        except TooLarge as error:
            raise StudentError(f"ValueError: your function's result cannot be graded: {error}") from None
        if not isinstance(outcome, dict) or not isinstance(outcome.get("calls"), list):
            raise self._link._protocol("bad stage outcome")
        return outcome

    def __repr__(self) -> str:
        return f"<your function {self._name} (in the student process)>"


class Unavailable:
    """Stands for a name the student defined whose value is not data nor a function: any use says so."""

    def __init__(self, name: str, type_name: str):
        self._message = (f"{name} is a {type_name} object in your notebook: the grader takes only functions and "
                         "data (numbers, strings, tensors, arrays, lists, dicts) from your answer cells")

    def __getattr__(self, item: str) -> Any:
        raise TypeError(self.__dict__.get("_message", "not available"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(self._message)


class Link:
    """One end of the socket between the grading worker (``trusted=True``) and the student process.

    The worker sends requests and waits for each answer; the student process serves them (its
    ``handlers``) and never sends a request: a request from it is a broken protocol.
    """

    def __init__(self, sock: socket.socket, trusted: bool, clock: Any = None):
        self.sock = sock
        self.trusted = trusted
        self._next_request = 1
        # worker: the clock deadlines are read on (a grading.clock.WorkClock: seconds of work, not of the machine's
        # queue), and when waiting on it raises Lost("timeout"); also when the work waits instead of computing
        # (WorkClock.idle), and past a wall-clock backstop (clock.wall_backstop of the budget)
        self.clock = clock or time.monotonic
        self._deadline: float | None = None
        self._armed_wall = self._backstop = 0.0
        self.timeout_reason = "time limit"
        self.lost: Lost | None = None
        self.last_student_error: StudentError | None = None
        self.handlers: dict[str, Any] = {}  # the student process's server fills these in
        if trusted:
            sock.setblocking(False)

    # -- framing ------------------------------------------------------------------------------
    def _fail(self, kind: str, reason: str) -> Lost:
        if self.lost is None:
            self.lost = Lost(kind, reason)
        return self.lost

    @property
    def deadline(self) -> float | None:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        """A deadline on :attr:`clock`; setting one starts its wall-clock backstop and its idle watch."""
        self._deadline = value
        if value is not None:
            self._armed_wall = time.monotonic()
            self._backstop = self._armed_wall + wall_backstop(value - self.clock())

    def _check_deadline(self) -> None:
        if self.lost is not None:
            raise self.lost
        if self._deadline is None:
            return
        if self.clock() >= self._deadline:
            raise self._fail("timeout", self.timeout_reason)
        waited = self.clock.idle(self._armed_wall) if hasattr(self.clock, "idle") else None
        if waited is not None:
            raise self._fail("timeout", f"{self.timeout_reason} (your code waited {waited:.0f} s without "
                                        "computing: a sleep, input(), a lock or a read that never returns)")
        if time.monotonic() >= self._backstop:
            raise self._fail("timeout", f"{self.timeout_reason} (the machine was too busy to give it that time "
                                        f"within {self._backstop - self._armed_wall:.0f} s: grade again on a "
                                        "quieter machine)")

    def _wait(self, write: bool) -> None:
        """Until the socket is ready, checking the deadline (on the work clock: polled) between looks."""
        while True:
            self._check_deadline()
            if hasattr(self.clock, "sample"):
                self.clock.sample()
            timeout = None if self._deadline is None else POLL_S
            readable, writable, _ = select.select([] if write else [self.sock], [self.sock] if write else [], [],
                                                  timeout)
            if readable or writable:
                return

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
        what = "a function" if callable(value) else f"a {type(value).__name__[:100]} object"
        if self.trusted:
            raise NotData(f"the check passed {what} to your function: only data crosses into the sandbox")
        raise NotData(f"it is {what}, not data (return tensors, arrays, numbers, strings or lists, tuples and "
                      "dicts of them)")

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

    def _count_elements(self, data: dict[str, Any], dec: _Dec) -> None:
        shape = data.get("shape")
        if dec.max_elements is None or not isinstance(shape, list) or not all(type(n) is int for n in shape):
            return
        dec.elements += math.prod(shape)
        if dec.elements > dec.max_elements:
            raise TooLarge(f"it holds more than {dec.max_elements:,} numbers (tensors and arrays together), far more "
                           "than any exercise's answer")

    def _dec_tagged(self, data: dict[str, Any], dec: _Dec, depth: int) -> Any:
        if "tensor" in data or "ndarray" in data:
            self._count_elements(data, dec)
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
                if isinstance(key, list | dict | torch.Tensor | np.ndarray):
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
        raise ProtocolError("unknown value")

    # -- calls ------------------------------------------------------------------------------------
    def call_student(self, name: str, args: tuple, kwargs: dict) -> Any:
        """Worker side: the check calls the student's function ``name`` (arguments and result as data)."""
        enc = _Enc(collect=True)
        try:
            payload = {"function": name, "args": self.enc(list(args), enc), "kwargs": self.enc(dict(kwargs), enc),
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
        try:
            return self.dec(result.get("value"), _Dec(grad_link=(self, call_id, inputs), max_elements=MAX_RESULT_ELEMENTS))
        except TooLarge as error:
            raise StudentError(f"ValueError: your function's result cannot be graded: {error}") from None

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
