"""Sandboxing of the student process: resource limits, Linux namespaces, the isolation modes.

:class:`Limits` are the teacher's limits for one submission. The student process, forked from the
grading worker, enters the sandbox before it runs any cell: on Linux where unprivileged
namespaces work (:func:`probe_sandbox` tries it in a throwaway child), its own user, mount, PID,
network, IPC and UTS namespaces with the whole filesystem read-only except a small private /tmp
(:data:`SANDBOX`); everywhere, limits on address space, file size, CPU time and open files, and
without namespaces, as root, the ``nobody`` user (:data:`LIMITS_ONLY`). :func:`_kill_orphans`
reaps what student code left behind in the worker. Only libc (through ctypes) and the standard
library: no torch here.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import re
import signal
import socket
import sys
from dataclasses import asdict, dataclass
from typing import Any

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
