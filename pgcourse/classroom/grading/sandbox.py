"""Where a student's code runs: a fresh bubblewrap sandbox per submission, and the limits it gets.

:class:`Limits` are the teacher's limits for one submission. :func:`student_command` is the command
line that starts the student process (:mod:`pgcourse.classroom.sandboxed.runner`):

- **sandbox** (the default, Linux with bubblewrap): ``bwrap`` gives the process its own mount, PID,
  network, IPC and UTS namespaces. Its filesystem holds only the Python interpreter, the installed
  packages (read-only; the course package ``pgcourse`` itself is hidden), the runner's own files and
  an empty private scratch folder (``/scratch``, also ``HOME`` and ``TMPDIR``): no course folder, no ``solutions/``, no submissions, no gradebook, no
  ``/etc`` beyond the dynamic linker's cache. The environment is cleared. A seccomp filter (below)
  refuses every new process (threads are allowed), so the address-space limit bounds the whole
  student's mappings, and every memory a process can hold unmapped (anonymous files, System V
  segments; ``/dev/shm`` is read-only): RLIMIT_AS would not count it. Where the machine lets the
  grader make one, a memory cgroup bounds the process too (:mod:`.memcg`). The runner then switches to an unprivileged user of its own (:func:`student_uid`,
  one per grading worker, so students graded at once never share a process limit) when bwrap ran as
  root (CI, containers), or stays the teacher's own unprivileged user otherwise.
- **unsafe-no-sandbox** (only when the teacher asks for it with ``--unsafe-no-sandbox``): the same
  runner as a plain process, as that unprivileged user when the grader runs as root, with the same resource
  limits. It sees the machine's files and processes: see docs/teachers.md for what is lost.

Hand-written low-level code is limited to what bubblewrap 0.8 (Debian 12) does not offer: the
seccomp program (bwrap loads it, from a file descriptor) and, in the runner, a size limit on
``/tmp`` (``--size`` came in bubblewrap 0.9) and the switch to the unprivileged user.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..sandboxed.runner import THREADS

SANDBOX = "sandbox"
UNSAFE = "unsafe-no-sandbox"
NOBODY = 65534
STUDENT_UID_BASE = 200_000  # unprivileged uids with no account on the machine: 200000 + the worker's pid


def student_uid() -> int:
    """The uid a grading worker's student processes run as (when the grader is root): its own, unused."""
    return STUDENT_UID_BASE + os.getpid() % 100_000
RUNNER_PACKAGE = "sandboxside"  # the runner's modules as the student process imports them (not "pgcourse")
RUNNER_MODULES = ("wire", "clock", "link", "student", "runner", "episode_cases", "loops", "ppo_proof")
SANDBOX_RUNNER_FOLDER = "/grading"  # where the sandbox sees the copy of the runner's modules
SANDBOX_SCRATCH = "/scratch"       # the student's writable folder (a size-limited tmpfs when bwrap ran as root)


# --------------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission (the defaults suit the course's small exercises)."""

    exercise_s: float = 30.0      # seconds of work per exercise (grading.clock: CPU time of its answer cells and its
                                  # check, not the wall clock), the cap of a budget
    submission_s: float = 300.0   # seconds of work for the whole submission
    memory_mb: int = 2048         # address space the student's code may add to the process
    output_mb: int = 8            # printed output (and any one file written) per exercise
    scratch_mb: int = 64          # private /tmp of the sandbox
    budget_factor: float = 10.0   # an exercise's time budget: this many times the course solution's own time ...
    budget_floor_s: float = 5.0   # ... and never less than this (see budget())

    def __post_init__(self) -> None:
        for name in ("exercise_s", "submission_s", "memory_mb", "output_mb", "scratch_mb", "budget_factor",
                     "budget_floor_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"limit {name} must be a positive number, got {value!r}")

    def budget(self, reference_s: float | None) -> float:
        """An exercise's budget of work (CPU seconds, :mod:`.clock`), from ``reference_s``, the seconds of work the
        course's solution took for it in the grader's self-test (answer cells plus check): min(exercise_s,
        max(budget_floor_s, budget_factor ×
        reference_s)); exercise_s when there is no reference time. A cell that sleeps or loops costs that
        exercise's budget, not --timeout, so a few of them do not slow the class."""
        if reference_s is None or not math.isfinite(reference_s) or reference_s < 0:
            return float(self.exercise_s)
        return min(float(self.exercise_s), max(float(self.budget_floor_s), float(self.budget_factor) * reference_s))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# seccomp: no new processes
# --------------------------------------------------------------------------------------------------

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# syscalls that create a process or a namespace: fork, vfork, clone (without CLONE_THREAD), clone3, unshare;
# and those that hold memory no address space counts (RLIMIT_AS counts mappings only): an anonymous file
# (memfd_create, memfd_secret) or a System V segment (shmget) keeps its pages after the last munmap
# and the channels that hold kernel memory outside every limit of the process: System V message queues and
# semaphores, POSIX message queues, kernel keys, io_uring rings, userfaultfd; and what inspects or traces another
# process (ptrace, process_vm_*, perf_event_open, bpf). A student's code needs none of them.
_SYSCALLS = {"x86_64": {"fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "unshare": 272,
                        "memfd_create": 319, "memfd_secret": 447, "shmget": 29,
                        "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
                        "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220,
                        "mq_open": 240, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
                        "add_key": 248, "request_key": 249, "keyctl": 250,
                        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 323,
                        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "perf_event_open": 298,
                        "bpf": 321},
             "aarch64": {"clone": 220, "clone3": 435, "unshare": 97,
                         "memfd_create": 279, "memfd_secret": 447, "shmget": 194,
                         "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189,
                         "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193,
                         "mq_open": 180, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184,
                         "add_key": 217, "request_key": 218, "keyctl": 219,
                         "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 282,
                         "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "perf_event_open": 241,
                         "bpf": 280}}
MEMORY_OUTSIDE = ("memfd_create", "memfd_secret", "shmget")
KERNEL_CHANNELS = ("msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semctl", "semtimedop", "mq_open",
                   "mq_timedsend", "mq_timedreceive", "mq_notify", "add_key", "request_key", "keyctl",
                   "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "ptrace",
                   "process_vm_readv", "process_vm_writev", "perf_event_open", "bpf")
_CLONE_THREAD = 0x00010000
_EPERM, _ENOSYS = 1, 38
_RET_ALLOW, _RET_ERRNO, _RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06


def seccomp_program(machine: str | None = None) -> bytes | None:
    """A classic-BPF seccomp filter (``struct sock_filter[]``) that refuses every new process and every
    memory outside the address space.

    fork/vfork/unshare, memfd_create/memfd_secret/shmget and the kernel channels (:data:`KERNEL_CHANNELS`: System V
    queues and semaphores, POSIX queues, keys, io_uring, userfaultfd, tracing) fail with EPERM; clone is allowed only
    with CLONE_THREAD (a thread: torch and
    numpy need them); clone3 fails with ENOSYS so that the C library falls back to clone. A syscall of
    another ABI (x32) kills the process. ``None`` on an architecture this module does not know.
    """
    machine = machine or platform.machine()
    if machine not in _AUDIT_ARCH:
        return None
    calls = _SYSCALLS[machine]
    code: list[tuple[int, int, int, int]] = []

    def op(kind: int, k: int, jt: int = 0, jf: int = 0) -> None:
        code.append((kind, jt, jf, k))

    op(_LD_W_ABS, 4)                                   # seccomp_data.arch
    op(_JEQ_K, _AUDIT_ARCH[machine], jt=1)             # the expected ABI: go on
    op(_RET_K, _RET_KILL)
    op(_LD_W_ABS, 0)                                   # seccomp_data.nr
    if machine == "x86_64":
        op(_JGE_K, 0x40000000, jt=0, jf=1)             # x32 syscall numbers
        op(_RET_K, _RET_KILL)
    refused = [(calls[name], _ENOSYS if name == "clone3" else _EPERM)
               for name in ("fork", "vfork", "unshare", "clone3", *MEMORY_OUTSIDE, *KERNEL_CHANNELS) if name in calls]
    for number, errno in refused:
        op(_JEQ_K, number, jt=0, jf=1)
        op(_RET_K, _RET_ERRNO | errno)
    op(_JEQ_K, calls["clone"], jt=0, jf=3)
    op(_LD_W_ABS, 16)                                  # clone's flags: low 32 bits of args[0]
    op(_JSET_K, _CLONE_THREAD, jt=1, jf=0)
    op(_RET_K, _RET_ERRNO | _EPERM)                    # a new process
    op(_RET_K, _RET_ALLOW)
    return b"".join(struct.pack("HBBI", *instruction) for instruction in code)


# --------------------------------------------------------------------------------------------------
# The command line of the student process
# --------------------------------------------------------------------------------------------------

def _read_only_roots() -> list[str]:
    """Folders the interpreter and the installed packages need, nothing of the course."""
    roots = {sys.base_prefix, sys.prefix, sys.exec_prefix}
    for entry in sys.path:  # site-packages outside the prefixes (e.g. a user site); never the course folder
        if entry.endswith(("site-packages", "dist-packages")) and os.path.isdir(entry):
            roots.add(entry)
    return sorted(root for root in roots if root and os.path.isdir(root))


def _hidden_package_dirs() -> list[str]:
    """Installed copies of ``pgcourse`` (a non-editable install) to cover with an empty folder."""
    found = []
    for entry in sys.path:
        candidate = os.path.join(entry, "pgcourse")
        if entry.endswith(("site-packages", "dist-packages")) and os.path.isdir(candidate):
            found.append(candidate)
    return found


def write_runner_package(folder: str | Path) -> Path:
    """Copy the runner's modules (which import nothing of pgcourse) into ``folder/sandboxside``."""
    target = Path(folder) / RUNNER_PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parents[1] / "sandboxed"  # the code that runs inside the sandbox
    (target / "__init__.py").write_text('"""The grader\'s runner, as the sandboxed student process sees it."""\n')
    for name in RUNNER_MODULES:
        source = here / f"{name}.py"
        shutil.copyfile(source, target / f"{name}.py")
    for path in [target, *target.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    Path(folder).chmod(0o755)
    return Path(folder)


def student_command(mode: str, runner_folder: str | Path, sock_fd: int, limits: dict[str, Any],
                    seccomp_fd: int | None = None, scratch: str | None = None) -> list[str]:
    """The argv that starts the student process in ``mode`` (``SANDBOX``, or ``UNSAFE`` with a ``scratch``
    folder of its own)."""
    config = json.dumps({"fd": sock_fd, "limits": limits, "mode": mode, "scratch": scratch, "uid": student_uid()})
    where = str(runner_folder) if mode == UNSAFE else SANDBOX_RUNNER_FOLDER
    # '..' collapsed (a folder on the way may not exist in the sandbox); symlinks kept: a venv's python is found
    # as a venv only through its own path (pyvenv.cfg beside it), so realpath would lose its packages
    python = [os.path.normpath(os.path.abspath(sys.executable)), "-I", "-B", "-c",
              f"import sys; sys.path.insert(0, {where!r}); from {RUNNER_PACKAGE}.runner import main; main(sys.argv[1])",
              config]
    if mode == UNSAFE:
        return python
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "MPLCONFIGDIR", "/tmp",
            "--setenv", "MPLBACKEND", "Agg", "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "MKL_NUM_THREADS", "1",
            "--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "PYTHONHASHSEED", "0",
            "--setenv", "SDL_VIDEODRIVER", "dummy", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--tmpfs", "/tmp", "--dir", SANDBOX_SCRATCH,  # first: a venv or runner under /tmp is bound on top
            "--ro-bind", "/usr", "/usr"]
    # the grader's own kernel path: a check compares the student's numbers with ones it computes itself, some
    # exactly (the seeded initial weights), and ATEN_CPU_CAPABILITY changes their last bits (orthogonal init's QR)
    capability = os.environ.get("ATEN_CPU_CAPABILITY", "")
    if capability.isalnum():
        argv += ["--setenv", "ATEN_CPU_CAPABILITY", capability]
    for link in ("lib", "lib64", "bin", "sbin", "lib32"):
        if os.path.islink(f"/{link}"):
            argv += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        elif os.path.isdir(f"/{link}"):
            argv += ["--ro-bind", f"/{link}", f"/{link}"]
    if os.path.exists("/etc/ld.so.cache"):
        argv += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    roots = _read_only_roots()
    parents = sorted({str(parent) for root in roots for parent in Path(root).parents if str(parent) != "/"}
                     - set(roots), key=lambda path: path.count("/"))
    for parent in parents:  # readable by the unprivileged user (bwrap would make them like their host folders)
        argv += ["--perms", "0755", "--dir", parent]
    for root in roots:
        argv += ["--ro-bind", root, root]
    for hidden in _hidden_package_dirs():
        argv += ["--tmpfs", hidden]
    # /dev/shm read-only: a file there holds memory that no address-space limit counts (shm_open, a tmpfs of
    # half the machine's memory otherwise)
    argv += ["--ro-bind", str(runner_folder), SANDBOX_RUNNER_FOLDER, "--proc", "/proc", "--dev", "/dev",
             "--tmpfs", "/dev/shm", "--remount-ro", "/dev/shm",
             # read-only: bwrap's root and /dev are tmpfs owned by the teacher's user in an unprivileged sandbox, so
             # the student (that same user) could fill them, unsized and unwatched; /tmp (watched, :mod:`.scratch`)
             # and, as root, the sized /scratch the runner mounts stay the only writable folders
             "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/"]
    if os.geteuid() != 0:
        argv += ["--unshare-user", "--disable-userns"]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv + ["--", *python]


def probe_sandbox() -> tuple[str | None, str]:
    """(SANDBOX, detail) when a bubblewrap sandbox starts here, else (None, the reason it does not)."""
    if not sys.platform.startswith("linux"):
        return None, f"no bubblewrap sandbox on {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--die-with-parent", "--ro-bind", "/", "/",
            "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    if os.geteuid() != 0:
        argv += ["--unshare-user"]
    try:
        done = subprocess.run(argv + ["--", "/bin/sh", "-c", "test -d /proc/self && ! touch /probe 2>/dev/null"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"bubblewrap did not start ({error})"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        return None, f"bubblewrap cannot create namespaces here ({reason[-1] if reason else done.returncode})"
    if seccomp_program() is None:
        return None, f"no seccomp filter for this processor ({platform.machine()})"
    root = os.geteuid() == 0
    who = "as an unprivileged user of its own" if root else "as your own unprivileged user"
    files = ("files only in a private /scratch of --scratch MB" if root else
             "files only in a private /tmp, watched and stopped past --scratch MB (everything else read-only)")
    threads = (f"at most {THREADS} threads" if root or _kernel_counts_per_namespace() else
               "threads not capped (Linux before 5.14 would count every process of your user)")
    return SANDBOX, (f"bubblewrap: a fresh sandbox per submission ({who}), only the interpreter and packages "
                     f"visible, {files}, no network, own PIDs, no new processes, {threads}, no System V IPC, "
                     "POSIX queues, kernel keys, io_uring or tracing")


def _kernel_counts_per_namespace() -> bool:
    """Linux 5.14 or later: RLIMIT_NPROC counts per user namespace (the runner caps a sandbox's threads)."""
    try:
        return tuple(int(part) for part in platform.release().split(".")[:2]) >= (5, 14)
    except ValueError:
        return False
