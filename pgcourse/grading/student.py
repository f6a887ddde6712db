"""The student process: the server that runs the course's setup cells and the student's answer cells.

:func:`_student_main` is the body of the process the grading worker forks for a submission: it
enters the sandbox (:mod:`pgcourse.grading.sandbox`), sends its output to a size-limited file
nobody reads, and serves the worker's requests with :class:`StudentServer` (run a cell, look up
a name, call a function with the check's arguments, a vector-Jacobian product). Nothing here can
reach the verdict: the worker only receives data and references over the socket.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import linecache
import os
import signal
import socket
import sys
import tempfile
import traceback
import types
import warnings
from typing import Any

import numpy as np
import torch

from .link import Link
from .sandbox import (_NOBODY, _PR_SET_PDEATHSIG, SANDBOX, _close_fds_except, _enter_sandbox, _prctl, _set_limit,
                      _vm_size)
from .wire import (ProtocolError, TooLarge, _array_payload, _b64, _Dec, _Enc, _rng_get, _rng_set, _seed_everything,
                   _short, _tensor_payload)

# The grading machinery's own source files (all of what was one module, pgcourse._gradeworker): their
# frames are dropped from the front of the student's tracebacks.
_MACHINERY_FILES = frozenset(os.path.join(os.path.dirname(__file__), f"{name}.py")
                             for name in ("wire", "link", "sandbox", "student", "worker"))


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
