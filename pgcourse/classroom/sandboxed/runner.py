"""The student process's first steps, inside the sandbox: limits, user, imports, then serve the worker.

Started by the grading worker as ``python -I -B -c "... from sandboxside.runner import main ..."``
(see :func:`pgcourse.classroom.grading.sandbox.student_command`), from a copy of these modules: it imports
nothing of ``pgcourse``, and ``pgcourse`` cannot be imported by the student's code either (the
reference answers are what the exercises re-implement). Order matters: every limit and the switch
to an unprivileged user happen before the first line of course or student code.
"""
from __future__ import annotations

import ctypes
import importlib.abc
import json
import os
import signal
import sys
import types
from typing import Any

try:
    import resource
except ImportError:  # pragma: no cover - the grader runs on Linux and macOS only
    resource = None

SANDBOX_SCRATCH = "/scratch"  # pgcourse.classroom.grading.sandbox.SANDBOX_SCRATCH (this module cannot import it)
NOBODY = 65534  # the group; the user is the worker's own unprivileged uid (config["uid"]), see sandbox.student_uid
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
POLICY = ("{name} is not available while grading: the course package holds the reference answers that the "
          "exercises re-implement, so it is kept out of the sandbox. Write your answer with torch and numpy.")


class _CourseBlocked(types.ModuleType):
    """What ``import pgcourse`` gives in the sandbox: a module whose every attribute is an ImportError."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(POLICY.format(name=f"pgcourse.{name}"))


class _BlockCourse(importlib.abc.MetaPathFinder):
    """Refuses ``pgcourse.*``; ``import pgcourse`` alone gives :class:`_CourseBlocked` (setup cells import it)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname.startswith("pgcourse."):
            raise ImportError(POLICY.format(name=fullname))
        return None


MEMORY_POLICY = ("{name} is not available while grading: memory held in an anonymous file or a shared segment is "
                 "not counted by the memory limit (--memory), so the sandbox refuses it. Keep your data in tensors, "
                 "arrays or Python objects.")


def _refuse_outside_memory() -> None:
    """Python's own doors to what the seccomp filter refuses (sandbox.MEMORY_OUTSIDE) say why, instead of a bare
    EPERM; a student who calls the syscall another way gets the EPERM."""
    import errno

    def refused(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(errno.EPERM, MEMORY_POLICY.format(name=name))
        return call

    if hasattr(os, "memfd_create"):
        os.memfd_create = refused("memfd_create")


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _set_limit(name: str, value: int) -> None:
    kind = getattr(resource, name, None) if resource is not None else None
    if kind is None:
        return
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _mount(source: bytes, target: bytes, fstype: bytes | None, flags: int, options: bytes | None) -> None:
    if _libc().mount(source, target, fstype, ctypes.c_ulong(flags), options) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"mount {target.decode()}: {os.strerror(number)}")


def _private_scratch(scratch: str, scratch_mb: int) -> None:
    """A size-limited tmpfs as the student's only writable folder (bubblewrap 0.8's --tmpfs has no size), and
    bwrap's unsized /tmp made read-only; needs root in this mount namespace."""
    ms_rdonly, ms_nosuid, ms_nodev, ms_remount = 1, 2, 4, 32
    _mount(b"tmpfs", scratch.encode(), b"tmpfs", ms_nosuid | ms_nodev, f"size={int(scratch_mb)}m,mode=1777".encode())
    _mount(b"tmpfs", b"/tmp", None, ms_remount | ms_rdonly | ms_nosuid | ms_nodev, None)


def _become(uid: int) -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise RuntimeError("could not leave the root user")


WARM_MODULES = ("torch", "torch.nn", "torch.nn.functional", "torch.distributions", "numpy", "numpy.testing",
                "gymnasium", "gymnasium.envs.classic_control", "gymnasium.spaces", "matplotlib", "matplotlib.pyplot",
                "IPython.display", "math", "random", "json", "glob", "itertools", "functools", "collections",
                "dataclasses", "typing", "copy", "time", "re", "statistics", "fractions", "decimal", "pathlib",
                "textwrap", "string", "operator", "heapq", "bisect", "warnings", "traceback", "socket", "tempfile")


def _warm_imports() -> None:
    """Import what the course's setup cells and the checks' calls use, before any student code runs."""
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional module is the course's problem, reported later
            pass
    import torch

    # What a check's gradient does lazily (a VJP with grad_outputs imports sympy) is done once here.
    leaf = torch.ones(3, requires_grad=True)
    torch.autograd.grad([leaf * 2.0], [leaf], [torch.ones(3)], retain_graph=True, allow_unused=True)
    torch.autograd.grad((leaf * torch.linspace(0.5, 1.5, 3)).sum(), [leaf], allow_unused=True)
    # The first optimiser imports torch._dynamo (and the standard library's cProfile with it): a loop stage that
    # builds one after the switch to another user found the interpreter's files unreadable (unsafe mode, as root).
    optimizer = torch.optim.Adam([leaf], lr=1e-3)
    leaf.grad = torch.ones(3)
    optimizer.step()


THREADS = 256  # the tasks (threads) a student process may hold: torch needs a few, a thread bomb thousands


def _counts_own_namespace() -> bool:
    """Whether RLIMIT_NPROC here counts only this sandbox's tasks: a user namespace of its own (bwrap's
    ``--unshare-user``, which a teacher who is not root gets), on Linux 5.14 or later, which counts a limit per
    user namespace (before, it counted every process of the teacher's user on the machine)."""
    try:
        with open("/proc/self/uid_map") as f:
            own = f.read().split() != ["0", "0", "4294967295"]
        major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    except (OSError, ValueError):
        return False
    return own and (major, minor) >= (5, 14)


def _enter(config: dict[str, Any]) -> tuple[int, str]:
    """Limits, user and output, before any course or student code; returns (socket fd, scratch folder)."""
    limits, mode = config["limits"], config["mode"]
    sock_fd = int(config["fd"])
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for number in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too much output: the write fails (EFBIG)
    if mode == "sandbox" and os.geteuid() == 0:
        scratch = SANDBOX_SCRATCH
        _private_scratch(scratch, limits["scratch_mb"])
    elif mode == "sandbox":
        scratch = "/tmp"  # bwrap's tmpfs (a teacher who is not root: no size limit but RLIMIT_FSIZE)
    else:
        scratch = config["scratch"]
    os.chdir(scratch)
    null = os.open(os.devnull, os.O_RDONLY)
    output = os.open(os.path.join(scratch, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    _warm_imports()  # as the user we started as: the interpreter's files may be unreadable for another user
    uid = int(config.get("uid") or NOBODY)
    if os.geteuid() == 0:
        os.chmod(scratch, 0o1777)
        os.fchown(output, uid, NOBODY)
        _become(uid)
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(null)
    os.close(output)
    os.closerange(3, sock_fd)
    os.closerange(sock_fd + 1, 1024)
    _set_limit("RLIMIT_CORE", 0)
    _set_limit("RLIMIT_FSIZE", int(limits["output_mb"] * 2**20))
    _set_limit("RLIMIT_NOFILE", 256)
    _set_limit("RLIMIT_CPU", int(limits["submission_s"]) + 10)
    if os.getuid() == uid or (mode == "sandbox" and _counts_own_namespace()):
        # Processes and threads of this user (seccomp already refuses processes in the sandbox: this bounds a
        # thread bomb). The uid is this grading worker's own, so one student's threads never count against
        # another's; or, for a teacher who is not root, the sandbox's own user namespace, where the kernel counts
        # only the sandbox's tasks. Never set for the teacher's own user outside one, whom it would count.
        _set_limit("RLIMIT_NPROC", THREADS)
    os.environ.clear()
    os.environ.update(HOME=scratch, TMPDIR=scratch, MPLCONFIGDIR=scratch, MPLBACKEND="Agg", OMP_NUM_THREADS="1",
                      PYTHONHASHSEED="0", SDL_VIDEODRIVER="dummy")
    return sock_fd, scratch


def main(config_json: str) -> None:
    """Body of the student process; never returns."""
    code = 70
    try:
        config = json.loads(config_json)
        sock_fd, scratch = _enter(config)
        if config["mode"] == "sandbox":
            _refuse_outside_memory()
        sys.meta_path.insert(0, _BlockCourse())
        blocked = _CourseBlocked("pgcourse", "the course package (not available while grading)")
        blocked.__path__ = []  # a package: `import pgcourse.x` then asks the finders, and _BlockCourse says why not
        sys.modules["pgcourse"] = blocked
        import socket
        import tempfile

        import torch

        from .episode_cases import warm_up as warm_up_episodes
        from .link import Link
        from .student import StudentServer, install_student_serving
        from .wire import _seed_everything

        torch.set_num_threads(1)
        warm_up_episodes()
        tempfile.tempdir = scratch
        if sys.platform.startswith("linux"):
            _set_limit("RLIMIT_AS", _vm_size() + int(config["limits"]["memory_mb"] * 2**20))
        _seed_everything(0)
        sock = socket.socket(fileno=sock_fd)
        link = Link(sock, trusted=False)
        install_student_serving(link)
        server = StudentServer(link)
        link.send({"k": "hello", "isolation": config["mode"], "pid": os.getpid(), "uid": os.getuid()})
        server.serve_forever()
        code = 0
    except BaseException:  # noqa: BLE001 - nothing can be reported from here
        code = 71
    finally:
        os._exit(code)
