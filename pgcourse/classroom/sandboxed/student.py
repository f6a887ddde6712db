"""The student process's server: runs the course's setup cells and the student's answer cells, and
answers the grading worker's requests with data.

Requests: run a cell (``exec``), look up the names a check reads (``lookup``: a function becomes a
handle by name, any other value must be data), call one of the student's functions with the
check's arguments (``call``), a vector-Jacobian product of a returned tensor (``vjp``), play one
case of the ``play_episode`` check with an environment built here (``episode``). Only data goes
back: numbers, strings, tensors and arrays (raw bytes, dtype, shape), containers of those. A
value that is not data (an object, a module, a generator of ours) is an error of the student's
code, never a reference. The process itself starts in :mod:`pgcourse.classroom.sandboxed.runner`.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import linecache
import os
import sys
import traceback
import types
import warnings
from typing import Any

import numpy as np
import torch

from . import episode_cases, loops
from .link import Link
from .wire import (NotData, ProtocolError, TooLarge, _array_payload, _b64, _Dec, _Enc, _rng_get, _rng_set, _short,
                   _tensor_payload)

# The grading machinery's own source files (all of what was one module, pgcourse._gradeworker): their
# frames are dropped from the front of the student's tracebacks.
_MACHINERY_FILES = frozenset(os.path.join(os.path.dirname(__file__), f"{name}.py")
                             for name in ("wire", "link", "student", "runner", "episode_cases", "loops"))


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
        link.handlers = {"exec": self._h_exec, "lookup": self._h_lookup, "call": self._h_call_student,
                         "vjp": self._h_vjp, "release": self._h_release, "episode": self._h_episode,
                         "stage": self._h_stage, "kit": self._h_kit,
                         "ping": lambda message: "pong"}

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
        """The names a check reads: functions as handles (by name), data as data, anything else as its type."""
        names = message.get("names")
        if not isinstance(names, list):
            raise ProtocolError("bad lookup")
        found: dict[str, Any] = {}
        for name in names:
            if not isinstance(name, str) or name not in self.ns or isinstance(self.ns[name], types.ModuleType):
                continue
            value = self.ns[name]
            if callable(value) and not isinstance(value, type):
                found[name] = {"function": name}
                continue
            try:
                found[name] = {"data": self.link.enc(value, _Enc())}
            except (NotData, TooLarge):
                found[name] = {"unavailable": type(value).__name__[:100]}
        return _Raw({"dict": [[name, {"dict": [[key, item] for key, item in entry.items()]}]
                              for name, entry in found.items()]})

    def _function(self, message: dict[str, Any]) -> Any:
        name = message.get("function")
        if not isinstance(name, str) or name not in self.ns or not callable(self.ns[name]):
            raise ProtocolError("unknown function")
        return self.ns[name]

    def _h_call_student(self, message: dict[str, Any]) -> Any:
        target = self._function(message)
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
        except (TooLarge, NotData) as error:
            raise _Reported(ValueError(f"your function's return value cannot be graded: {error}")) from None
        call_id = self._next_call
        self._next_call += 1
        self.calls[call_id] = (leaves, outputs)
        mutated = []
        for index, (tensor, old) in enumerate(zip(dec.tensors, before)):
            now = tensor.detach()
            if (now.shape != old.shape or now.dtype != old.dtype  # NaN at the same place is no change
                    or not torch.allclose(now, old, rtol=0.0, atol=0.0, equal_nan=True)):
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

    def _h_episode(self, message: dict[str, Any]) -> Any:
        """One case of the play_episode check: the environment and the controller are built here."""
        env_id, controller, seed = message.get("env_id"), message.get("controller"), message.get("seed")
        if env_id not in {case[1] for case in episode_cases.CASES} or controller not in episode_cases.CONTROLLERS \
                or type(seed) is not int:
            raise ProtocolError("bad episode case")
        target = self._function(message)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = episode_cases.play(target, env_id, controller, seed)
        _flush_output()
        try:
            return _Raw(self.link.enc(outcome, _Enc()))
        except (TooLarge, NotData) as error:
            raise _Reported(ValueError(f"your function's return value cannot be graded: {error}")) from None

    def _h_stage(self, message: dict[str, Any]) -> Any:
        """One case of a loop stage (:mod:`.loops`): built here from its description, played with the student's
        function; their exception is reported as theirs."""
        target = self._function(message)
        spec = self.link.dec(message.get("spec"), _Dec())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome = loops.play(target, spec)
        except loops.SpecError:
            raise
        except BaseException as error:  # noqa: BLE001 - their exception, whatever it is, is reported
            _flush_output()
            raise _Reported(error) from None
        _flush_output()
        try:
            return _Raw(self.link.enc(outcome, _Enc()))
        except (TooLarge, NotData) as error:
            raise _Reported(ValueError(f"your function's result cannot be graded: {error}")) from None

    def _h_kit(self, message: dict[str, Any]) -> Any:
        """Offer the parts of the course package a loop is given (:func:`.loops.install_kit`)."""
        names = message.get("names")
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ProtocolError("bad kit")
        return loops.install_kit(names)

    def _h_release(self, message: dict[str, Any]) -> Any:
        self.calls.clear()
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
    while tb is not None and tb.tb_frame.f_code.co_filename in _MACHINERY_FILES:
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


def install_student_serving(link: Link) -> None:
    """Student-side serving: results already encoded (_Raw) and student exceptions (_Reported) need care."""
    link.serve = types.MethodType(_student_serve, link)
