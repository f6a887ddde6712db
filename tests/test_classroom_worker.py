"""Tests that pin the definitions of the grading worker and its sandbox's command line (issue 45, item 5).

The grading tests run whole submissions through a real worker and a real bubblewrap sandbox: they test paths, and
a one-line bug in a description, a budget, a limit, a note or an argument list can pass them all. Each test below
states one definition of :mod:`pgcourse.classroom.grading.worker` or :mod:`pgcourse.classroom.grading.sandbox` on
small objects built here: no sandbox, no student process, no worker pool (processes, sockets to a student and the
clock are fakes), so that any bug of its class fails here, in the unit lane.
"""
from __future__ import annotations

import builtins
import io
import json
import math
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pgcourse.classroom.grading import sandbox, worker
from pgcourse.classroom.grading.sandbox import Limits
from pgcourse.classroom.sandboxed.link import StudentFunction, Unavailable
from pgcourse.classroom.sandboxed.wire import _HEADER, Lost, StudentError

MB = 2**20


# ==================================================================================================================
# Fakes: a clock, a link to a student process, a student process, a worker
# ==================================================================================================================

class FakeClock:
    """A work clock that reads ``now`` (and moves it on by ``step`` at each reading)."""

    def __init__(self, now: float = 0.0, step: float = 0.0):
        self.now, self.step = now, step
        self.watched: list[int] = []
        self.forgotten: list[int] = []

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value

    def watch(self, pid: int) -> None:
        self.watched.append(pid)

    def forget(self, pid: int) -> None:
        self.forgotten.append(pid)


class WallClock(FakeClock):
    """A FakeClock that reads the wall clock (for a real socket's deadline)."""

    def __call__(self) -> float:
        return time.monotonic()


class FakeLink:
    """The worker's end of a link: ``script[op](payload)`` is the student process's answer (the value of "ok")."""

    def __init__(self, script: dict | None = None):
        self.script = {"ping": lambda p: {}, "release": lambda p: {}, "kit": lambda p: None, **(script or {})}
        self.requests: list[tuple[str, dict, float | None, str]] = []
        self.lost: Lost | None = None
        self.deadline: float | None = None
        self.timeout_reason = "time limit"
        self.last_student_error = None
        self.calls: list[tuple[str, tuple, dict]] = []
        self.functions: dict = {}
        self.sock = types.SimpleNamespace(close=lambda: None)

    def request(self, op: str, payload: dict) -> dict:
        self.requests.append((op, payload, self.deadline, self.timeout_reason))
        return {"ok": self.script[op](payload)}

    def _answer(self, response: dict, dec=None):
        return response["ok"]

    def _fail(self, kind: str, reason: str) -> Lost:
        if self.lost is None:
            self.lost = Lost(kind, reason)
        return self.lost

    def call_student(self, name: str, args: tuple, kwargs: dict):
        self.calls.append((name, args, kwargs))
        return self.functions[name](*args, **kwargs)

    def ops(self) -> list[str]:
        return [op for op, *_ in self.requests]


class FakeStudent:
    """A student process: its link, what ``end`` returns and what ``scratch_full`` says."""

    def __init__(self, link: FakeLink, status: int | None = None, full: str | None = None):
        self.link, self.status, self.full = link, status, full
        self.ended: list[float] = []

    def end(self, wait: float = 0.0):
        self.ended.append(wait)
        return self.status

    def scratch_full(self, limits):
        return self.full


class FakeWorker:
    isolation, runner_folder, memory_cgroup = "sandbox", "/runner", None

    def __init__(self, base: dict | None = None):
        self.base = base or {}

    def _context(self, course):
        return {"__name__": "__main__", "__builtins__": builtins, **self.base}


def make_session(course=None, answers=None, limits=None, base=None, now=0.0, step=0.0):
    course = {"key": "k", "context": [], "exercises": [], **(course or {})}
    limits = {"exercise_s": 30.0, "submission_s": 300.0, "output_mb": 8, **(limits or {})}
    session = worker._Session(FakeWorker(base), course, answers or {}, limits)
    session.clock = FakeClock(now, step)
    session.start = now
    session.submission_deadline = now + float(limits["submission_s"])
    return session


def with_students(monkeypatch, script=None, status=None, full=None):
    """Student processes made by the session are FakeStudents over FakeLinks running ``script``; the list of them."""
    made = []

    def start(config, deadline, clock):
        student = FakeStudent(FakeLink(script), status, full)
        student.config, student.deadline = config, deadline
        made.append(student)
        return student

    monkeypatch.setattr(worker, "StudentProcess", start)
    return made


def lost(kind: str, reason: str):
    def raise_it(payload):
        raise Lost(kind, reason)
    return raise_it


# ==================================================================================================================
# sandbox.py: constants, the student's uid
# ==================================================================================================================

def test_the_modes_folders_and_runner_package_are_named_as_documented():
    """The modes are "sandbox" and "unsafe-no-sandbox" (the CLI's words); the runner's modules are imported as the
    package "sandboxside" from /grading (never "pgcourse"), the student's scratch is /scratch, nobody is 65534."""
    assert (sandbox.SANDBOX, sandbox.UNSAFE) == ("sandbox", "unsafe-no-sandbox")
    assert (sandbox.RUNNER_PACKAGE, sandbox.SANDBOX_RUNNER_FOLDER, sandbox.SANDBOX_SCRATCH) == \
        ("sandboxside", "/grading", "/scratch")
    assert (sandbox.NOBODY, sandbox.STUDENT_UID_BASE) == (65534, 200_000)
    assert sandbox.RUNNER_MODULES == ("wire", "clock", "link", "student", "runner", "episode_cases", "loops",
                                      "ppo_proof")


def test_the_runner_modules_import_nothing_of_the_course_and_only_each_other():
    """The modules copied into the sandbox import nothing of ``pgcourse`` (hidden there), and each relative import
    of one of them names another copied module (else the student process could not start)."""
    import ast

    folder = Path(worker.__file__).resolve().parents[1] / "sandboxed"
    for name in sandbox.RUNNER_MODULES:
        tree = ast.parse((folder / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(alias.name.split(".")[0] == "pgcourse" for alias in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "pgcourse", name
                if node.level:
                    modules = [node.module] if node.module else [alias.name for alias in node.names]
                    assert node.level == 1 and set(modules) <= set(sandbox.RUNNER_MODULES), (name, modules)


@pytest.mark.parametrize("pid, uid", [(1, 200_001), (99_999, 299_999), (100_000, 200_000), (123_456, 223_456),
                                      (0, 200_000)])
def test_a_workers_student_uid_is_the_base_plus_its_pid_modulo_100000(monkeypatch, pid, uid):
    """A worker's students run as 200000 + (its pid mod 100000): one uid per worker, never below the base, never
    200000 + 100000 or more."""
    monkeypatch.setattr(os, "getpid", lambda: pid)
    assert sandbox.student_uid() == uid


# ==================================================================================================================
# sandbox.py: Limits
# ==================================================================================================================

FIELDS = ("exercise_s", "submission_s", "memory_mb", "output_mb", "scratch_mb", "budget_factor", "budget_floor_s")


def test_the_default_limits():
    """30 s of work per exercise, 300 s per submission, 2048 MB of memory, 8 MB of output, 64 MB of scratch, a
    budget of 10 times the solution's time and at least 5 s; to_dict gives them all by name, in that order."""
    assert Limits().to_dict() == {"exercise_s": 30.0, "submission_s": 300.0, "memory_mb": 2048, "output_mb": 8,
                                  "scratch_mb": 64, "budget_factor": 10.0, "budget_floor_s": 5.0}
    assert list(Limits().to_dict()) == list(FIELDS)
    assert Limits(memory_mb=512, exercise_s=2.5).to_dict()["memory_mb"] == 512


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, "5", None, [5]],
                         ids=lambda v: repr(v))
def test_every_limit_must_be_a_positive_finite_number(name, bad):
    """Each limit is refused (ValueError naming the limit and the value given) unless it is a finite number above
    zero: zero, negatives, nan, infinities, text, None and lists are all refused."""
    with pytest.raises(ValueError) as error:
        Limits(**{name: bad})
    assert str(error.value) == f"limit {name} must be a positive number, got {bad!r}"


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("good", [1e-9, 1, 0.5, 10**9])
def test_any_positive_finite_number_is_a_limit(name, good):
    """The smallest positive values and very large ones are limits; integers and floats alike."""
    assert getattr(Limits(**{name: good}), name) == good


@pytest.mark.parametrize("reference, budget", [
    (None, 30.0),            # no reference time: --timeout
    (math.nan, 30.0), (math.inf, 30.0), (-math.inf, 30.0), (-0.1, 30.0), (-1e-12, 30.0),
    (0.0, 5.0),              # the floor
    (0.1, 5.0), (0.5, 5.0),  # 10 × 0.5 = 5: the floor, exactly
    (0.6, 6.0), (1.0, 10.0), (2.9, 29.0),
    (3.0, 30.0),             # 10 × 3 = 30: the cap, exactly
    (3.1, 30.0), (1000.0, 30.0),
])
def test_an_exercises_budget_is_the_solutions_time_times_the_factor_between_the_floor_and_the_cap(reference, budget):
    """budget(r) = min(exercise_s, max(budget_floor_s, budget_factor × r)); exercise_s when r is None, not finite or
    negative; 0 s of reference gives the floor."""
    got = Limits().budget(reference)
    assert got == pytest.approx(budget) and isinstance(got, float)


def test_a_budget_uses_the_limits_own_factor_floor_and_cap():
    """The factor, the floor and the cap are the Limits' own (not the defaults), and the result is a float even from
    integer limits."""
    limits = Limits(exercise_s=20, budget_factor=3, budget_floor_s=2)
    assert [limits.budget(r) for r in (None, 0.5, 1.0, 5.0, 7.0)] == [20.0, 2.0, 3.0, 15.0, 20.0]
    assert all(isinstance(limits.budget(r), float) for r in (None, 0.5, 5.0, 7.0))


# ==================================================================================================================
# sandbox.py: the seccomp program, run by a small classic-BPF interpreter written here
# ==================================================================================================================

ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64
ALLOW, ERRNO, KILL = 0x7FFF0000, 0x00050000, 0x80000000  # SECCOMP_RET_*
EPERM, ENOSYS = 1, 38
CLONE_THREAD = 0x00010000
# Linux's syscall numbers (asm/unistd_64.h, asm-generic/unistd.h), written out here
X86_REFUSED = {"fork": 57, "vfork": 58, "unshare": 272, "clone3": 435,
               "memfd_create": 319, "memfd_secret": 447, "shmget": 29,
               "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
               "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220,
               "mq_open": 240, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
               "add_key": 248, "request_key": 249, "keyctl": 250,
               "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 323,
               "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "perf_event_open": 298, "bpf": 321}
ARM_REFUSED = {"unshare": 97, "clone3": 435,
               "memfd_create": 279, "memfd_secret": 447, "shmget": 194,
               "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189,
               "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193,
               "mq_open": 180, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184,
               "add_key": 217, "request_key": 218, "keyctl": 219,
               "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 282,
               "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "perf_event_open": 241, "bpf": 280}
CLONE = {"x86_64": 56, "aarch64": 220}
REFUSED = {"x86_64": X86_REFUSED, "aarch64": ARM_REFUSED}


def run_filter(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """What the kernel does with a syscall under ``program`` (struct sock_filter: u16 code, u8 jt, u8 jf, u32 k;
    struct seccomp_data: u32 nr, u32 arch, u64 ip, u64 args[6]): the filter's return value."""
    assert len(program) % 8 == 0 and 0 < len(program) // 8 <= 4096
    code = [struct.unpack_from("=HBBI", program, offset) for offset in range(0, len(program), 8)]
    data = struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, 0, arg0, 0, 0, 0, 0, 0)
    pc, accumulator = 0, 0
    while True:
        kind, jt, jf, k = code[pc]
        if kind == 0x20:                                   # BPF_LD | BPF_W | BPF_ABS
            accumulator = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif kind in (0x15, 0x35, 0x45):                  # BPF_JMP | BPF_JEQ / BPF_JGE / BPF_JSET, BPF_K
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: bool(accumulator & k)}[kind]
            pc += 1 + (jt if taken else jf)
        elif kind == 0x06:                                 # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"unexpected instruction {kind:#x}")


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_seccomp_filter_refuses_exactly_the_listed_syscalls(machine):
    """On each known processor, every syscall number from 0 to 599 is allowed except: the listed process, memory and
    kernel-channel syscalls, which fail with EPERM, clone3, which fails with ENOSYS (the C library falls back to
    clone), and clone, which is allowed for a thread only (CLONE_THREAD in its flags) and fails with EPERM else."""
    program = sandbox.seccomp_program(machine)
    expected = {number: ERRNO | (ENOSYS if name == "clone3" else EPERM) for name, number in REFUSED[machine].items()}
    for nr in range(600):
        got = run_filter(program, nr, ARCH[machine])
        if nr == CLONE[machine]:
            assert got == ERRNO | EPERM
            assert run_filter(program, nr, ARCH[machine], arg0=CLONE_THREAD) == ALLOW
        else:
            assert got == expected.get(nr, ALLOW), (machine, nr)


def test_the_refused_groups_are_named():
    """The memory outside the address space is memfd_create, memfd_secret and shmget; the kernel channels are the
    System V queues and semaphores, POSIX queues, keys, io_uring, userfaultfd and tracing (the tuples the runner
    and the docs name)."""
    assert sandbox.MEMORY_OUTSIDE == ("memfd_create", "memfd_secret", "shmget")
    assert set(sandbox.KERNEL_CHANNELS) == set(X86_REFUSED) - {"fork", "vfork", "unshare", "clone3", "memfd_create",
                                                               "memfd_secret", "shmget"}
    assert len(sandbox.KERNEL_CHANNELS) == len(set(sandbox.KERNEL_CHANNELS)) == 24


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize("flags, allowed", [
    (CLONE_THREAD, True), (CLONE_THREAD | 0x00000F00 | 0x00040000, True), (0xFFFFFFFF, True),
    (0, False), (17, False), (0x00000F00, False), (CLONE_THREAD - 1, False), (CLONE_THREAD << 1, False),
    (CLONE_THREAD << 32, False),   # the high word of args[0]: not the flags the filter reads
])
def test_clone_is_allowed_only_for_a_thread(machine, flags, allowed):
    """clone passes only when its flags' low 32 bits hold CLONE_THREAD; any other clone (a fork through clone) fails
    with EPERM."""
    program = sandbox.seccomp_program(machine)
    assert run_filter(program, CLONE[machine], ARCH[machine], arg0=flags) == (ALLOW if allowed else ERRNO | EPERM)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize("arch", [0, 0x40000003, 0xC000003E, 0xC00000B7, 0xFFFFFFFF])
def test_a_syscall_of_another_abi_kills_the_process(machine, arch):
    """A syscall whose audit architecture is not the machine's own (i386 on x86_64, say) kills the process, whatever
    its number (read, 0, included)."""
    program = sandbox.seccomp_program(machine)
    for nr in (0, 1, CLONE[machine]):
        assert run_filter(program, nr, arch, CLONE_THREAD) == (ALLOW if arch == ARCH[machine] else KILL)


@pytest.mark.parametrize("nr, killed", [(0x3FFFFFFF, False), (0x40000000, True), (0x40000001, True),
                                        (0x40000000 + 57, True), (0x7FFFFFFF, True), (0xFFFFFFFF, True)])
def test_an_x32_syscall_number_kills_the_process_on_x86_64_only(nr, killed):
    """On x86_64 a syscall number of 0x40000000 or more (the x32 ABI, same audit arch) kills the process; below it is
    an ordinary number. aarch64 has no such range: those numbers are allowed there."""
    assert run_filter(sandbox.seccomp_program("x86_64"), nr, ARCH["x86_64"]) == (KILL if killed else ALLOW)
    assert run_filter(sandbox.seccomp_program("aarch64"), nr, ARCH["aarch64"]) == ALLOW


@pytest.mark.parametrize("machine", ["riscv64", "i686", "armv7l", "X86_64", "x86-64", "AARCH64", "arm64", " x86_64"])
def test_no_seccomp_program_for_an_unknown_processor(machine):
    """An architecture this module does not know (case and spelling exactly as platform.machine gives) has no
    program: None."""
    assert sandbox.seccomp_program(machine) is None


@pytest.mark.parametrize("given", [None, ""])
def test_the_seccomp_program_is_this_machines_when_none_is_named(monkeypatch, given):
    """Without a machine (None or empty) the program is the one for platform.machine()."""
    monkeypatch.setattr(sandbox.platform, "machine", lambda: "aarch64")
    assert sandbox.seccomp_program(given) == sandbox.seccomp_program("aarch64") != sandbox.seccomp_program("x86_64")
    monkeypatch.setattr(sandbox.platform, "machine", lambda: "sparc")
    assert sandbox.seccomp_program(given) is None


# ==================================================================================================================
# sandbox.py: what the sandbox binds
# ==================================================================================================================

def test_the_read_only_roots_are_the_prefixes_and_outside_site_packages_only(monkeypatch, tmp_path):
    """The read-only roots are the three prefixes (once each) and the sys.path entries ending in site-packages or
    dist-packages that are folders, sorted; never another sys.path entry (the course folder), never a missing
    folder or an empty prefix."""
    folders = {name: tmp_path / name for name in ("zbase", "prefix", "user/site-packages", "deb/dist-packages",
                                                  "course", "site-packages-not", "m")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    monkeypatch.setattr(sys, "base_prefix", str(folders["zbase"]))
    monkeypatch.setattr(sys, "prefix", str(folders["prefix"]))
    monkeypatch.setattr(sys, "exec_prefix", str(folders["prefix"]))
    path = [str(folders["course"]), "", str(folders["user/site-packages"]), str(folders["deb/dist-packages"]),
            str(tmp_path / "gone/site-packages"), str(folders["site-packages-not"]), str(folders["m"]),
            str(folders["user/site-packages"]) + "/"]
    monkeypatch.setattr(sys, "path", path)
    roots = sandbox._read_only_roots()
    assert roots == sorted([str(folders["zbase"]), str(folders["prefix"]), str(folders["user/site-packages"]),
                            str(folders["deb/dist-packages"])])
    monkeypatch.setattr(sys, "exec_prefix", "")
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "missing"))
    assert sandbox._read_only_roots() == sorted([str(folders["prefix"]), str(folders["user/site-packages"]),
                                                 str(folders["deb/dist-packages"])])


def test_the_hidden_package_folders_are_installed_copies_of_the_course_package(monkeypatch, tmp_path):
    """The folders covered by an empty tmpfs are ``<entry>/pgcourse`` for each sys.path entry ending in site-packages
    or dist-packages where that is a folder, in sys.path order: not a checkout (the course folder is not bound at
    all), not a file named pgcourse, not a site-packages without the package."""
    first, second = tmp_path / "a/site-packages", tmp_path / "b/dist-packages"
    empty, filed, checkout = tmp_path / "c/site-packages", tmp_path / "d/site-packages", tmp_path / "checkout"
    for folder in (first / "pgcourse", second / "pgcourse", empty, filed, checkout / "pgcourse"):
        folder.mkdir(parents=True)
    (filed / "pgcourse").write_text("")
    monkeypatch.setattr(sys, "path", [str(second), str(checkout), str(empty), str(filed), str(first)])
    assert sandbox._hidden_package_dirs() == [str(second / "pgcourse"), str(first / "pgcourse")]
    monkeypatch.setattr(sys, "path", [])
    assert sandbox._hidden_package_dirs() == []


def test_the_runner_package_is_a_readable_copy_of_the_runners_modules(tmp_path):
    """write_runner_package(folder) makes folder/sandboxside holding an __init__.py and a byte-for-byte copy of each
    runner module, nothing else; folders 0755 and files 0644 whatever the umask; returns ``folder`` itself; a second
    call restores a changed copy."""
    folder = tmp_path / "runner"
    folder.mkdir(mode=0o700)
    old = os.umask(0o077)
    try:
        assert sandbox.write_runner_package(str(folder)) == folder
    finally:
        os.umask(old)
    source = Path(worker.__file__).resolve().parents[1] / "sandboxed"
    target = folder / "sandboxside"
    assert sorted(path.name for path in target.iterdir()) == sorted(
        ["__init__.py", *(f"{name}.py" for name in sandbox.RUNNER_MODULES)])
    for name in sandbox.RUNNER_MODULES:
        assert (target / f"{name}.py").read_bytes() == (source / f"{name}.py").read_bytes()
    assert (target / "__init__.py").read_text() == \
        '"""The grader\'s runner, as the sandboxed student process sees it."""\n'
    assert [oct(path.stat().st_mode & 0o777) for path in (folder, target)] == ["0o755", "0o755"]
    assert {oct(path.stat().st_mode & 0o777) for path in target.iterdir()} == {"0o644"}
    (target / "wire.py").write_text("tampered")
    sandbox.write_runner_package(folder)
    assert (target / "wire.py").read_bytes() == (source / "wire.py").read_bytes()
    fresh = tmp_path / "new" / "deeper"  # not there yet: made, parents too
    assert sandbox.write_runner_package(fresh) == fresh and (fresh / "sandboxside" / "runner.py").is_file()


# ==================================================================================================================
# sandbox.py: the student's command line
# ==================================================================================================================

def python_part(where: str, fd: int, limits: dict, mode: str, scratch, uid: int, executable: str) -> list[str]:
    code = f"import sys; sys.path.insert(0, {where!r}); from sandboxside.runner import main; main(sys.argv[1])"
    return [executable, "-I", "-B", "-c", code,
            json.dumps({"fd": fd, "limits": limits, "mode": mode, "scratch": scratch, "uid": uid})]


@pytest.fixture
def host(monkeypatch):
    """A host with a known interpreter, bwrap, top-level links and folders, euid, pid and read-only roots."""
    monkeypatch.setattr(sys, "executable", "/opt/py/bin/python3")
    monkeypatch.setattr(os, "getpid", lambda: 7)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: "/usr/bin/bwrap" if name == "bwrap" else None)
    monkeypatch.setattr(sandbox, "_read_only_roots", lambda: ["/opt/py"])
    monkeypatch.setattr(sandbox, "_hidden_package_dirs", lambda: [])
    world = types.SimpleNamespace(links={"/lib": "usr/lib", "/bin": "usr/bin"}, dirs={"/lib64", "/sbin"},
                                  cache=True)
    tops = {"/lib", "/lib64", "/bin", "/sbin", "/lib32"}
    islink, isdir, exists, readlink = os.path.islink, os.path.isdir, os.path.exists, os.readlink
    monkeypatch.setattr(os.path, "islink", lambda p: p in world.links if p in tops else islink(p))
    monkeypatch.setattr(os.path, "isdir", lambda p: p in world.dirs if p in tops else isdir(p))
    monkeypatch.setattr(os, "readlink", lambda p: world.links[p] if p in tops else readlink(p))
    monkeypatch.setattr(os.path, "exists", lambda p: world.cache if p == "/etc/ld.so.cache" else exists(p))
    return world


SANDBOX_HEAD = ["/usr/bin/bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv",
                "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "MPLCONFIGDIR", "/tmp",
                "--setenv", "MPLBACKEND", "Agg", "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "MKL_NUM_THREADS",
                "1", "--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "PYTHONHASHSEED", "0",
                "--setenv", "SDL_VIDEODRIVER", "dummy", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
                "--tmpfs", "/tmp", "--dir", "/scratch", "--ro-bind", "/usr", "/usr"]


def test_the_sandboxed_student_command_in_full(host):
    """The whole argv of a sandboxed student process, written out: bwrap's namespaces and a cleared environment with
    only the listed variables; /tmp and /scratch; /usr, the top-level links as links and folders as read-only binds,
    the linker's cache; the roots' parents as 0755 folders; the roots read-only; the runner at /grading; /proc, /dev,
    a read-only /dev/shm, a read-only / and /dev; an unprivileged user's own user namespace; the seccomp fd; then the
    interpreter, isolated (-I -B), importing the runner from /grading with the JSON configuration."""
    limits = {"memory_mb": 2048}
    argv = sandbox.student_command("sandbox", "/var/runner", 5, limits, seccomp_fd=9)
    assert argv == SANDBOX_HEAD + [
        "--symlink", "usr/lib", "/lib", "--ro-bind", "/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
        "--ro-bind", "/sbin", "/sbin",
        "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
        "--perms", "0755", "--dir", "/opt",
        "--ro-bind", "/opt/py", "/opt/py",
        "--ro-bind", "/var/runner", "/grading", "--proc", "/proc", "--dev", "/dev",
        "--tmpfs", "/dev/shm", "--remount-ro", "/dev/shm", "--remount-ro", "/dev", "--remount-ro", "/",
        "--chdir", "/", "--unshare-user", "--disable-userns", "--seccomp", "9", "--",
        *python_part("/grading", 5, limits, "sandbox", None, 200_007, "/opt/py/bin/python3")]


def test_as_root_no_user_namespace_no_linker_cache_no_seccomp(host, monkeypatch):
    """As root the sandbox gets no user namespace (the runner switches user); without /etc/ld.so.cache nothing binds
    it; without a seccomp fd there is no --seccomp; a file descriptor 0 is still passed (it is one)."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    host.cache = False
    argv = sandbox.student_command("sandbox", "/r", 3, {})
    assert "--unshare-user" not in argv and "--disable-userns" not in argv and "--seccomp" not in argv
    assert "/etc/ld.so.cache" not in argv
    assert argv[argv.index("--chdir") + 2] == "--"
    argv = sandbox.student_command("sandbox", "/r", 3, {}, seccomp_fd=0)
    assert argv[argv.index("--seccomp"):argv.index("--seccomp") + 3] == ["--seccomp", "0", "--"]


def test_the_top_level_links_and_folders_are_bound_as_the_host_has_them(host):
    """Each of /lib, /lib64, /bin, /sbin, /lib32 (in that order) is made a symlink to the same target when it is one
    on the host, bound read-only when it is a folder, left out when it is neither."""
    host.links, host.dirs = {"/lib32": "usr/lib32", "/sbin": "bin"}, {"/bin", "/lib"}
    argv = sandbox.student_command("sandbox", "/r", 3, {})
    start = argv.index("/usr") + 2
    assert argv[start:start + 12] == ["--ro-bind", "/lib", "/lib", "--ro-bind", "/bin", "/bin",
                                      "--symlink", "bin", "/sbin", "--symlink", "usr/lib32", "/lib32"]
    host.links, host.dirs = {}, set()
    argv = sandbox.student_command("sandbox", "/r", 3, {})
    assert not any(path in argv for path in ("/lib", "/lib64", "/bin", "/sbin", "/lib32"))


def test_the_roots_parents_are_made_shallowest_first_and_the_package_copies_are_covered(host, monkeypatch):
    """Every parent of a read-only root (not / and not a root itself) is made a 0755 folder before any root is bound,
    shallower ones first; each root is bound read-only at its own path; each installed copy of the course package is
    covered by an empty tmpfs after the roots are bound."""
    roots = ["/a/b/c", "/a/b/c/d/site-packages", "/z/y", "/a-much-longer-name/x"]
    monkeypatch.setattr(sandbox, "_read_only_roots", lambda: roots)
    monkeypatch.setattr(sandbox, "_hidden_package_dirs", lambda: ["/a/b/c/d/site-packages/pgcourse"])
    argv = sandbox.student_command("sandbox", "/r", 3, {})
    made = [argv[i + 3] for i, arg in enumerate(argv) if arg == "--perms"]
    assert all(argv[i + 1:i + 3] == ["0755", "--dir"] for i, arg in enumerate(argv) if arg == "--perms")
    assert set(made) == {"/a", "/a/b", "/z", "/a/b/c/d", "/a-much-longer-name"}   # not /a/b/c: a root
    depths = [path.count("/") for path in made]
    assert depths == sorted(depths)
    bound = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--ro-bind" and argv[i + 1] == argv[i + 2]]
    assert [b for b in bound if b in roots] == roots
    last_dir = max(i for i, arg in enumerate(argv) if arg == "--perms")
    assert last_dir < min(argv.index(root) for root in roots)
    cover = argv.index("/a/b/c/d/site-packages/pgcourse")
    assert argv[cover - 1] == "--tmpfs" and cover > max(argv.index(root) for root in roots)
    assert cover < argv.index("/grading")


@pytest.mark.parametrize("value, passed", [("avx2", True), ("default", True), ("AVX512", True), ("", False),
                                           ("avx2; rm -rf /", False), ("avx 2", False), ("avx-2", False),
                                           ("avx2\n", False)])
def test_the_graders_kernel_path_is_passed_on_when_it_is_a_plain_word(host, monkeypatch, value, passed):
    """ATEN_CPU_CAPABILITY is set in the sandbox to the grader's own value when that is letters and digits only;
    otherwise (empty, spaces, punctuation) the cleared environment stays without it."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", value)
    argv = sandbox.student_command("sandbox", "/r", 3, {})
    setenv = [argv[i + 1:i + 3] for i, arg in enumerate(argv) if arg == "--setenv"]
    assert (["ATEN_CPU_CAPABILITY", value] in setenv) == passed
    assert sum(name == "ATEN_CPU_CAPABILITY" for name, _ in setenv) == int(passed)
    assert argv.index("--clearenv") < min(i for i, arg in enumerate(argv) if arg == "--setenv")


def test_no_bubblewrap_is_an_error_that_says_so(host, monkeypatch):
    """In sandbox mode without bwrap on the PATH: RuntimeError naming bubblewrap; unsafe mode does not need it."""
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"bubblewrap \(bwrap\) is not installed"):
        sandbox.student_command("sandbox", "/r", 3, {})
    assert sandbox.student_command("unsafe-no-sandbox", "/r", 3, {}, scratch="/s")[0] == "/opt/py/bin/python3"


def test_the_unsafe_student_command_is_the_plain_interpreter_with_its_own_scratch(host):
    """Without the sandbox the argv is only the interpreter, importing the runner from the real runner folder, with the
    scratch folder, the socket fd, the limits, the mode and the uid in its JSON configuration (no bwrap, no
    seccomp even when given)."""
    limits = {"exercise_s": 30.0, "scratch_mb": 64}
    argv = sandbox.student_command("unsafe-no-sandbox", Path("/home/t/runner"), 11, limits, 4, "/tmp/s")
    assert argv == python_part("/home/t/runner", 11, limits, "unsafe-no-sandbox", "/tmp/s", 200_007,
                               "/opt/py/bin/python3")
    assert json.loads(argv[-1]) == {"fd": 11, "limits": limits, "mode": "unsafe-no-sandbox", "scratch": "/tmp/s",
                                    "uid": 200_007}


def test_the_interpreters_path_is_made_absolute_and_dotdots_collapsed_but_symlinks_kept(host, monkeypatch,
                                                                                      tmp_path):
    """The interpreter is named by its absolute path with '..' collapsed (a folder on the way may not exist in the
    sandbox) but not resolved through symlinks (a venv's python finds its packages only through its own path)."""
    monkeypatch.setattr(sys, "executable", "/opt/py/lib/../bin/./python3")
    assert sandbox.student_command("unsafe-no-sandbox", "/r", 3, {})[0] == "/opt/py/bin/python3"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", "venv/bin/python")
    assert sandbox.student_command("sandbox", "/r", 3, {})[-6] == str(tmp_path / "venv/bin/python")
    (tmp_path / "real").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "link"))
    assert sandbox.student_command("unsafe-no-sandbox", "/r", 3, {})[0] == str(tmp_path / "link")


# ==================================================================================================================
# sandbox.py: probing for a sandbox
# ==================================================================================================================

@pytest.fixture
def probe(monkeypatch):
    """A Linux host with bwrap whose probe run succeeds; ``probe.runs`` records (argv, kwargs) of each run."""
    state = types.SimpleNamespace(runs=[], returncode=0, stderr=b"", error=None)

    def run(argv, **kwargs):
        state.runs.append((argv, kwargs))
        if state.error is not None:
            raise state.error
        return types.SimpleNamespace(returncode=state.returncode, stderr=state.stderr)

    monkeypatch.setattr(sandbox.sys, "platform", "linux")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: "/usr/bin/bwrap" if name == "bwrap" else None)
    monkeypatch.setattr(sandbox.subprocess, "run", run)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sandbox.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(sandbox, "_kernel_counts_per_namespace", lambda: True)
    return state


PROBE_ARGV = ["/usr/bin/bwrap", "--unshare-pid", "--unshare-net", "--die-with-parent", "--ro-bind", "/", "/",
              "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
PROBE_SHELL = ["--", "/bin/sh", "-c", "test -d /proc/self && ! touch /probe 2>/dev/null"]


def detail(who: str, files: str, threads: str) -> str:
    return (f"bubblewrap: a fresh sandbox per submission ({who}), only the interpreter and packages visible, {files}, "
            f"no network, own PIDs, no new processes, {threads}, no System V IPC, POSIX queues, kernel keys, io_uring "
            "or tracing")


USER = ("as your own unprivileged user",
        "files only in a private /tmp, watched and stopped past --scratch MB (everything else read-only)")
ROOT = ("as an unprivileged user of its own", "files only in a private /scratch of --scratch MB")
CAPPED = "at most 256 threads"
UNCAPPED = "threads not capped (Linux before 5.14 would count every process of your user)"


@pytest.mark.parametrize("euid, counts, expected", [
    (1000, True, detail(*USER, CAPPED)), (1000, False, detail(*USER, UNCAPPED)),
    (0, True, detail(*ROOT, CAPPED)), (0, False, detail(*ROOT, CAPPED)),   # as root the runner caps them anyway
])
def test_a_working_sandbox_is_described_for_its_user(probe, monkeypatch, euid, counts, expected):
    """A probe that starts (a shell in a new PID and mount namespace that sees /proc and cannot write /) gives
    ("sandbox", what the sandbox does): whose user the student runs as, where it may write, and whether its threads
    are capped (as root, or on a kernel that counts them per user namespace)."""
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    monkeypatch.setattr(sandbox, "_kernel_counts_per_namespace", lambda: counts)
    assert sandbox.probe_sandbox() == ("sandbox", expected)
    (argv, kwargs), = probe.runs
    assert argv == PROBE_ARGV + (["--unshare-user"] if euid else []) + PROBE_SHELL
    assert kwargs == {"capture_output": True, "timeout": 30}


@pytest.mark.parametrize("platform_name", ["darwin", "win32", "cygwin", "freebsd13"])
def test_no_sandbox_off_linux(probe, monkeypatch, platform_name):
    """Off Linux there is no bubblewrap sandbox, and nothing is run."""
    monkeypatch.setattr(sandbox.sys, "platform", platform_name)
    assert sandbox.probe_sandbox() == (None, f"no bubblewrap sandbox on {platform_name}")
    assert probe.runs == []


def test_no_sandbox_without_bubblewrap(probe, monkeypatch):
    """Without bwrap: None and how to install it; nothing is run. A "linux2" platform is Linux."""
    monkeypatch.setattr(sandbox.sys, "platform", "linux2")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    assert sandbox.probe_sandbox() == (None, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    assert probe.runs == []


@pytest.mark.parametrize("error", [OSError("exec format error"), subprocess.TimeoutExpired(["bwrap"], 30)],
                         ids=["oserror", "timeout"])
def test_a_bubblewrap_that_does_not_start_is_no_sandbox(probe, error):
    """bwrap failing to start or not finishing in 30 s: None, saying so with the error."""
    probe.error = error
    assert sandbox.probe_sandbox() == (None, f"bubblewrap did not start ({error})")


@pytest.mark.parametrize("stderr, shown", [
    (b"bwrap: setting up uid map: Permission denied\n", "bwrap: setting up uid map: Permission denied"),
    (b"first line\n  second line  \n\n", "  second line"),   # the text is stripped, not its last line
    (b"", "1"), (b"   \n", "1"),
    (b"caf\xc3\xa9 \xff\n", "caf\u00e9 \ufffd"),
])
def test_a_bubblewrap_that_fails_is_no_sandbox_with_its_last_words(probe, stderr, shown):
    """A probe exiting non-zero: None, "cannot create namespaces here" with the last line of bwrap's stripped stderr
    (decoded, undecodable bytes replaced), or its exit status when it said nothing."""
    probe.returncode, probe.stderr = 1, stderr
    assert sandbox.probe_sandbox() == (None, f"bubblewrap cannot create namespaces here ({shown})")


def test_no_sandbox_on_a_processor_without_a_seccomp_program(probe, monkeypatch):
    """A machine this module has no seccomp program for (bwrap works): None, naming the processor."""
    monkeypatch.setattr(sandbox.platform, "machine", lambda: "riscv64")
    assert sandbox.probe_sandbox() == (None, "no seccomp filter for this processor (riscv64)")


@pytest.mark.parametrize("release, counts", [
    ("5.14.0", True), ("5.14", True), ("5.15.0-91-generic", True), ("6.1.0-18-amd64", True), ("10.0.0", True),
    ("5.13.19", False), ("5.9.0", False), ("4.19.0", False), ("5", False), ("5.14-rc1", False), ("abc", False),
    ("", False),
])
def test_the_kernel_counts_threads_per_user_namespace_from_5_14(monkeypatch, release, counts):
    """From Linux 5.14 on (compared as numbers: 10.0 is later than 5.14) RLIMIT_NPROC counts per user namespace; a
    release whose first two parts are not numbers is taken as older."""
    monkeypatch.setattr(sandbox.platform, "release", lambda: release)
    assert sandbox._kernel_counts_per_namespace() is counts


# ==================================================================================================================
# worker.py: constants, exit statuses
# ==================================================================================================================

def test_the_workers_constants():
    """A check's own work may run 2 s past the exercise's deadline; the worker may add 4096 MB after its imports; the
    runner's refusal of the course package contains the text the worker looks for in a setup cell's error."""
    from pgcourse.classroom.sandboxed.runner import POLICY

    assert worker.ALARM_GRACE == 2.0 and worker.WORKER_MEMORY_MB == 4096
    assert worker.COURSE_BLOCKED == "is not available while grading"
    assert worker.COURSE_BLOCKED in POLICY.format(name="pgcourse.rl")


SIGNAL_WORDS = [
    (signal.SIGSEGV, "crashed with a segmentation fault (SIGSEGV)"),
    (signal.SIGBUS, "crashed with a bus error (SIGBUS)"),
    (signal.SIGABRT, "aborted (SIGABRT)"),
    (signal.SIGFPE, "crashed with an arithmetic fault (SIGFPE)"),
    (signal.SIGXCPU, "used up its CPU time"),
    (signal.SIGXFSZ, "printed or wrote more than 8 MB"),
    (signal.SIGKILL, "was killed (SIGKILL), e.g. for using too much memory"),
    (signal.SIGTERM, "was killed by SIGTERM"),
    (signal.SIGINT, "was killed by SIGINT"),
    (signal.SIGHUP, "was killed by SIGHUP"),
    (signal.SIGSYS, "was killed by SIGSYS"),
]


@pytest.mark.parametrize("number, words", SIGNAL_WORDS, ids=[s.name for s, _ in SIGNAL_WORDS])
def test_a_process_ended_by_a_signal_is_described_by_that_signal(number, words):
    """Status -n (as end() reports it, as Popen does) means signal n: the crashes, CPU time, output size and kills
    by name, any other signal as "was killed by" its name. In the sandbox, 128 + n (bubblewrap's report of signal n
    inside) is signal n or the student's own exit status 128 + n: both are said."""
    assert worker.describe_exit(-int(number), {"output_mb": 8}) == f"the process running your code {words}"
    assert worker.describe_exit(128 + int(number), {"output_mb": 8}, sandboxed=True) == (
        f"the process running your code {words}, or your code ended it with exit status {128 + int(number)} "
        "(the sandbox cannot tell these apart)")


@pytest.mark.parametrize("output_mb", [1, 8, 0.5, 100])
def test_too_much_output_names_the_output_limit(output_mb):
    """SIGXFSZ names the --output limit of this grading, as given."""
    assert worker.describe_exit(-signal.SIGXFSZ, {"output_mb": output_mb}) == \
        f"the process running your code printed or wrote more than {output_mb} MB"


@pytest.mark.parametrize("status", [0, 1, 2, 42, 126, 127, 128, 139, 255])
def test_a_status_of_0_or_more_is_the_students_own_exit(status):
    """0 or more: the student's code ended the process itself (os._exit or a crash), with that status (128 too in
    the sandbox: bubblewrap reports a signal n as 128 + n, n >= 1)."""
    for sandboxed in (False, True) if status <= 128 else (False,):
        assert worker.describe_exit(status, {"output_mb": 8}, sandboxed=sandboxed) == \
            f"your code ended the process (exit status {status}), e.g. with os._exit() or a crash"


@pytest.mark.parametrize("status, number", [(-99, 99), (-1000, 1000)])
def test_a_signal_number_with_no_name_is_given_as_a_number(status, number):
    """A status that is no known signal's: "was killed by signal n"; in the sandbox, 128 + n for such an n too."""
    assert worker.describe_exit(status, {"output_mb": 8}) == \
        f"the process running your code was killed by signal {number}"
    assert worker.describe_exit(128 + number, {"output_mb": 8}, sandboxed=True).startswith(
        f"the process running your code was killed by signal {number}, or your code ended it")


def test_no_status_means_the_process_ended():
    """No status known: "the student process ended"."""
    assert worker.describe_exit(None, {}) == "the student process ended"


# ==================================================================================================================
# worker.py: which names a check cell asks the student for
# ==================================================================================================================

@pytest.mark.parametrize("source, names", [
    ("", []),
    ("check(f)", ["check", "f"]),
    ("check(f)\ncheck(f)\ncheck(g)", ["check", "f", "g"]),                      # sorted, once each
    ("zeta(alpha, Beta)", ["Beta", "alpha", "zeta"]),
    ("print(len(f(range(3))))", ["f"]),                                        # builtins are not asked for
    ("def helper(x):\n    return f(x) + y\nhelper(1)", ["f", "x", "y"]),       # a function defined here is bound
                                                                               # (its parameter, read, is asked for)
    ("async def helper():\n    return f\n", ["f"]),
    ("class Case:\n    size = n\nCase()", ["n"]),
    ("import numpy as np\nnp.zeros(k)", ["k"]),
    ("import os.path\nos.path.join(p)", ["p"]),                                # import a.b binds a
    ("import os.path as osp\nosp.join(os)", ["os"]),                           # ... as c binds c only
    ("from math import pi as PI, tau\nPI + tau + e", ["e"]),
    ("x = f(1)\nx + 1", ["f"]),                                                # top-level assignment binds
    ("a, (b, c) = f()\na + b + c + d", ["d", "f"]),
    ("total: int = start\ntotal", ["start"]),
    ("count += 1\ncount", []),                                                 # augmented assignment binds
    ("for i in items:\n    i\ni", ["items"]),                                  # a for target binds
    ("with opener() as handle:\n    handle.read()", ["opener"]),               # a with target binds
    ("if flag:\n    value = 1\nvalue", ["flag", "value"]),                     # not inside an if
    ("try:\n    value = 1\nexcept Exception:\n    pass\nvalue", ["value"]),    # ... nor a try
    ("def g():\n    inner = 1\ninner", ["inner"]),                             # a function's local does not bind
    ("obj.attr = f\nobj[k] = 1", ["f", "k", "obj"]),                           # attribute/item stores read the object
    ("del gone", []),                                                          # a del reads nothing
    ("[i for i in range(n)]", ["i", "n"]),                                     # a comprehension's variable is a load
    ("λ = α\nλ", ["α"]),                                                       # unicode names
    ("True and None", []),
])
def test_a_check_asks_the_student_for_the_names_it_reads_and_does_not_bind_at_top_level(source, names):
    """free_names(check) is the sorted, distinct names the cell reads anywhere, minus builtins and the names its own
    top-level statements bind (def, async def, class, import (the first part, or the alias), assignment,
    annotated and augmented assignment, for and with targets); a name bound only inside an if, a try or a
    function is still asked for."""
    assert worker.free_names(source) == names


def test_a_check_that_is_not_python_is_a_syntax_error():
    """A check cell that does not parse raises SyntaxError (the course's own cell is broken)."""
    with pytest.raises(SyntaxError):
        worker.free_names("check(")


# ==================================================================================================================
# worker.py: the deadline on the worker's own work in a check
# ==================================================================================================================

@pytest.mark.parametrize("at, now, seconds", [(5.0, 2.0, 3.0), (2.5, 2.0, 0.5), (2.0, 2.0, 0.01), (1.0, 2.0, 0.01),
                                              (2.005, 2.0, 0.01), (2.02, 2.0, 0.02)])
def test_the_deadline_arms_a_cpu_timer_for_what_is_left_at_least_10_ms(monkeypatch, at, now, seconds):
    """Entering a _Deadline arms ITIMER_PROF for ``at - clock()`` seconds, at least 0.01 (a deadline already past
    still fires, soon), with its own SIGPROF handler; leaving disarms the timer and restores the previous handler."""
    timers = []
    monkeypatch.setattr(worker.signal, "setitimer", lambda which, value: timers.append((which, value)))
    previous = signal.getsignal(signal.SIGPROF)
    deadline = worker._Deadline(None, at, lambda: now)
    with deadline:
        handler = signal.getsignal(signal.SIGPROF)
        assert handler == deadline._fire
    assert timers[0][0] == signal.ITIMER_PROF and timers[0][1] == pytest.approx(seconds)
    assert timers[1:] == [(signal.ITIMER_PROF, 0)]
    assert signal.getsignal(signal.SIGPROF) == previous


def test_a_deadline_that_fires_raises_a_timeout_and_marks_the_link_lost_once():
    """When it fires it raises Lost("timeout", "time limit") and, if the link is not lost yet, marks it lost with that;
    a link already lost keeps its first reason. Without a link it only raises."""
    link = FakeLink()
    with pytest.raises(Lost) as raised:
        worker._Deadline(link, 0.0)._fire(signal.SIGPROF, None)
    assert (raised.value.kind, raised.value.reason) == ("timeout", "time limit") and link.lost is raised.value
    first = link.lost
    with pytest.raises(Lost):
        worker._Deadline(link, 0.0)._fire(signal.SIGPROF, None)
    assert link.lost is first
    with pytest.raises(Lost):
        worker._Deadline(None, 0.0)._fire(signal.SIGPROF, None)


def test_a_real_deadline_stops_a_busy_loop():
    """Armed for 20 ms of CPU time, a busy loop is stopped by Lost("timeout") (well before 30 s of wall time, even on a
    busy machine)."""
    link = FakeLink()
    started = time.monotonic()
    with pytest.raises(Lost):
        with worker._Deadline(link, time.process_time() + 0.02, time.process_time):
            while time.monotonic() - started < 30.0:
                sum(range(1000))
    assert link.lost is not None


# ==================================================================================================================
# worker.py: feedback text
# ==================================================================================================================

ERROR_LINE = "pgcourse.classroom.sandboxed.wire.StudentError: "


@pytest.mark.parametrize("message, cleaned", [
    ("plain message", "plain message"),
    ("", ""),
    ("Traceback (most recent call last):\n  File \"<check cell c>\", line 1, in <module>\n    check(f)\n"
     + ERROR_LINE + "Traceback (student)\nValueError: bad", "Traceback (student)\nValueError: bad"),
    ("Traceback (most recent call last):\n\tFile x\n" + ERROR_LINE + "a\nTraceback (most recent call last):\n"
     "  File y\n" + ERROR_LINE + "b", "a\nb"),                                   # each of them
    ("Traceback (most recent call last):\n" + ERROR_LINE + "direct", "direct"),  # no frame at all
    ("Traceback (most recent call last):\n  File x\nValueError: not the student's", None),  # another error: kept
    ("Traceback (most recent call last):\nFile x\n" + ERROR_LINE + "y", None),  # an unindented line ends the frames
    ("traceback (most recent call last):\n  File x\n" + ERROR_LINE + "y", None),
    ("Traceback (most recent call last):\n  File x\nsomething.StudentError: y", None),
])
def test_the_graders_own_frames_are_dropped_from_a_students_exception(message, cleaned):
    """_clean_feedback removes each "Traceback (most recent call last):" block of indented frame lines that ends in
    the line raising the grader's StudentError (the student's own traceback follows it); anything else is kept."""
    assert worker._clean_feedback(message) == (message if cleaned is None else cleaned)


@pytest.mark.parametrize("length", [0, 1, 5999, 6000])
def test_a_results_feedback_is_kept_whole_up_to_6000_characters(length):
    """_result(points, status, feedback): the three under those keys, the feedback stripped of surrounding
    whitespace and whole when it is 6000 characters or fewer."""
    text = "é" * length
    assert worker._result(1.5, "passed", f" \n{text}\t\n") == {"points": 1.5, "status": "passed", "feedback": text}


@pytest.mark.parametrize("length", [6001, 6002, 20_000])
def test_a_longer_feedback_keeps_its_first_and_last_3000_characters(length):
    """Past 6000 characters (after stripping) the feedback is its first 3000 and last 3000 characters around a line
    saying that the middle was cut."""
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    feedback = worker._result(0, "error", "  " + text + "  ")["feedback"]
    assert feedback == text[:3000] + "\n[… cut …]\n" + text[-3000:]


# ==================================================================================================================
# worker.py: where a student's memory is bounded
# ==================================================================================================================

def test_memory_is_bounded_by_the_address_space_alone_without_a_hierarchy(monkeypatch):
    """No cgroup hierarchy: (None, "the address-space limit (--memory), " + why none)."""
    monkeypatch.setattr(worker, "find_hierarchy", lambda: (None, "no cgroups here (No such file)"))
    assert worker._usable_hierarchy() == (None, "the address-space limit (--memory), no cgroups here (No such file)")


def test_a_hierarchy_where_no_cgroup_can_be_made_is_not_used(monkeypatch):
    """A hierarchy where making (and removing) a trial cgroup fails: (None, the address-space limit, the error's
    strerror and the parent folder)."""
    hierarchy = types.SimpleNamespace(parent=Path("/sys/fs/cgroup/x"))
    monkeypatch.setattr(worker, "find_hierarchy", lambda: (hierarchy, "a memory cgroup (v2)"))

    def refuse(h):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(worker, "StudentCgroup", refuse)
    assert worker._usable_hierarchy() == (
        None, "the address-space limit (--memory), no memory cgroup (Permission denied in /sys/fs/cgroup/x)")


def test_a_hierarchy_where_a_cgroup_can_be_made_is_used_and_the_trial_removed(monkeypatch):
    """A hierarchy where a trial cgroup is made and removed: (it, "the address-space limit and " + how found)."""
    hierarchy, removed = types.SimpleNamespace(parent=Path("/p")), []

    class Trial:
        def __init__(self, h):
            assert h is hierarchy

        def remove(self):
            removed.append(True)
    monkeypatch.setattr(worker, "find_hierarchy", lambda: (hierarchy, "a memory cgroup (v1) of its own under /p"))
    monkeypatch.setattr(worker, "StudentCgroup", Trial)
    assert worker._usable_hierarchy() == (hierarchy, "the address-space limit and a memory cgroup (v1) of its own "
                                                     "under /p")
    assert removed == [True]


# ==================================================================================================================
# worker.py: the Worker
# ==================================================================================================================

@pytest.fixture
def quiet_worker_host(monkeypatch, tmp_path):
    """Worker() without probing a real sandbox or cgroup, its runner folder under tmp_path."""
    calls = types.SimpleNamespace(probes=0, probe=("sandbox", "bubblewrap: ok"))

    def probe():
        calls.probes += 1
        return calls.probe
    monkeypatch.setattr(worker, "probe_sandbox", probe)
    monkeypatch.setattr(worker, "_usable_hierarchy", lambda: (None, "the address-space limit (--memory), none"))
    folder = tmp_path / "runner"
    folder.mkdir()
    monkeypatch.setattr(worker.tempfile, "mkdtemp", lambda prefix: str(folder))
    calls.folder = folder
    return calls


@pytest.mark.parametrize("isolation", ["auto", "sandbox"])
def test_a_worker_uses_the_sandbox_the_probe_found(quiet_worker_host, isolation):
    """Unless asked for no sandbox, the worker probes and uses the sandbox found, its detail followed by how memory
    is bounded; it writes the runner package into a folder of its own."""
    made = worker.Worker(isolation)
    assert (made.isolation, made.isolation_detail) == ("sandbox", "bubblewrap: ok; memory: the address-space limit "
                                                                  "(--memory), none")
    assert quiet_worker_host.probes == 1 and made.memory_cgroup is None
    assert made.runner_folder == quiet_worker_host.folder and (made.runner_folder / "sandboxside/runner.py").is_file()


def test_a_worker_given_a_runner_folder_writes_the_runner_package_there(quiet_worker_host, tmp_path):
    """The pool makes the runner folder (so that it can remove it after killing the worker) and names it in hello:
    the worker writes its package there and makes none of its own."""
    given = tmp_path / "given"
    given.mkdir()
    made = worker.Worker("auto", str(given))
    assert made.runner_folder == given and (given / "sandboxside/runner.py").is_file()
    assert list(quiet_worker_host.folder.iterdir()) == []


def test_a_worker_asked_for_no_sandbox_does_not_probe_and_says_what_is_lost(quiet_worker_host):
    """--unsafe-no-sandbox: no probe; the detail says that student code sees this machine's files and processes."""
    made = worker.Worker("unsafe-no-sandbox")
    assert made.isolation == "unsafe-no-sandbox" and quiet_worker_host.probes == 0
    assert made.isolation_detail == ("no sandbox (--unsafe-no-sandbox): student code sees this machine's files and "
                                     "processes; memory: the address-space limit (--memory), none")


def test_a_worker_without_a_sandbox_refuses_to_start_and_says_how_to_go_on(quiet_worker_host):
    """No sandbox found (and none refused): RuntimeError with the probe's reason, bubblewrap and the option."""
    quiet_worker_host.probe = (None, "bubblewrap is not installed")
    with pytest.raises(RuntimeError) as error:
        worker.Worker()
    assert str(error.value) == ("no sandbox for student code: bubblewrap is not installed. Install bubblewrap, or "
                                "pass --unsafe-no-sandbox to grade without one (see docs/teachers.md for what is lost)")


def test_a_courses_context_is_run_once_per_course_key_as_main_and_silently(capsys):
    """A course's setup cells run once per course key, in order, in a namespace named __main__ with the real
    builtins, each compiled under its label, their output discarded; another key gets a namespace of its own."""
    made = worker.Worker.__new__(worker.Worker)
    made._contexts = {}
    course = {"key": "c1", "context": [("<setup 1>", "x = 1\nprint('noise')\ndef f():\n    pass"),
                                       ("<setup 2>", "import sys\ny = x + 1\nprint('err', file=sys.stderr)")]}
    namespace = made._context(course)
    assert (namespace["x"], namespace["y"], namespace["__name__"]) == (1, 2, "__main__")
    assert namespace["__builtins__"] is builtins and namespace["f"].__code__.co_filename == "<setup 1>"
    assert made._context(course) is namespace
    assert made._context({"key": "c1", "context": [("<other>", "x = 99")]})["x"] == 1   # by key, not by content
    other = made._context({"key": "c2", "context": [("<setup>", "x = 5")]})
    assert other is not namespace and other["x"] == 5 and "y" not in other
    assert capsys.readouterr() == ("", "")


def test_grading_a_submission_runs_one_session_and_always_closes_it(monkeypatch):
    """Worker.grade returns the session's exercises, the worker's isolation and the session's seconds; the session is
    closed after it ran, and also when it failed."""
    sessions = []

    class Session:
        def __init__(self, owner, course, answers, limits):
            self.args, self.closed, self.seconds = (owner, course, answers, limits), False, {"e": 1.5}
            sessions.append(self)

        def run(self):
            if self.args[1] == "broken":
                raise RuntimeError("boom")
            return {"e": {"points": 1}}

        def close(self):
            self.closed = True
    monkeypatch.setattr(worker, "_Session", Session)
    made = worker.Worker.__new__(worker.Worker)
    made.isolation = "sandbox"
    assert made.grade("course", {"a": []}, {"l": 1}) == {"exercises": {"e": {"points": 1}}, "isolation": "sandbox",
                                                         "seconds": {"e": 1.5}}
    assert sessions[0].args == (made, "course", {"a": []}, {"l": 1}) and sessions[0].closed
    with pytest.raises(RuntimeError, match="boom"):
        made.grade("broken", {}, {})
    assert sessions[1].closed


# ==================================================================================================================
# worker.py: a session
# ==================================================================================================================

def test_a_session_starts_from_a_copy_of_the_courses_namespace_with_its_own_deadline():
    """A session's namespace is a copy of the course's (what a check defines never reaches the course's), all of
    whose names are trusted; its submission deadline is ``submission_s`` of work after it starts; the student process
    is configured with the worker's isolation, the limits, the runner folder (as text) and the memory hierarchy."""
    owner = FakeWorker({"helper": 1})
    owner.runner_folder, owner.memory_cgroup = Path("/runner"), "H"
    base = owner._context(None)
    owner._context = lambda course: base
    session = worker._Session(owner, {"key": "k"}, {}, {"submission_s": 12})
    session.ns["new"] = 2
    assert "new" not in base and session.ns["helper"] == 1 and session.trusted_names == set(base)
    assert session.submission_deadline - session.start == pytest.approx(12.0, abs=1e-9)
    assert session.config == {"isolation": "sandbox", "limits": {"submission_s": 12}, "runner_folder": "/runner",
                              "memory_cgroup": "H"}
    assert (session.student, session.executed, session.poisoned, session.skipped_added, session.added_notes,
            session.seconds, session.inserted) == (None, set(), set(), {}, [], {}, {})


def test_closing_a_session_ends_its_student_and_empties_its_namespace():
    """close() ends the student process (if any), forgets it and clears the session's namespace."""
    session = make_session(base={"helper": 1})
    student = FakeStudent(FakeLink())
    session.student = student
    session.close()
    assert student.ended == [0.0] and session.student is None and session.ns == {}
    session.close()   # no student: nothing to end


@pytest.mark.parametrize("used_up_at", [0, 1, 2, 3])
def test_exercises_after_the_submissions_time_is_used_up_are_not_graded(monkeypatch, used_up_at):
    """Exercises are graded in order, each with its position; from the first one that starts at or after the
    submission's deadline, each is a timeout naming the submission's limit (``:g`` seconds)."""
    session = make_session(course={"exercises": [{"id": f"e{i}"} for i in range(3)]}, limits={"submission_s": 90})
    graded = []

    def grade(position, exercise):
        graded.append((position, exercise["id"]))
        if len(graded) == used_up_at:
            session.clock.now = session.submission_deadline   # exactly the deadline: used up
        return {"points": 1, "status": "passed", "feedback": "passed"}
    monkeypatch.setattr(session, "_grade", grade)
    if used_up_at == 0:
        session.clock.now = session.submission_deadline + 1
    results = session.run()
    assert graded == [(i, f"e{i}") for i in range(min(max(used_up_at, 0), 3))]
    timeout = {"points": 0, "status": "timeout", "feedback": "not graded: the submission used up its time limit of "
                                                             "90 s"}
    assert list(results) == ["e0", "e1", "e2"]
    assert [results[f"e{i}"] == timeout for i in range(3)] == [i >= used_up_at for i in range(3)]


def test_just_before_the_deadline_an_exercise_is_still_graded(monkeypatch):
    """An exercise that starts a moment before the submission's deadline is graded."""
    session = make_session(course={"exercises": [{"id": "e0"}]}, limits={"submission_s": 2.5})
    session.clock.now = session.submission_deadline - 1e-6
    monkeypatch.setattr(session, "_grade", lambda p, e: {"status": "passed"})
    assert session.run() == {"e0": {"status": "passed"}}


# -- losing the student process --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, wait", [("crashed", 0.3), ("protocol", 0.3), ("timeout", 0.0)])
def test_a_lost_student_is_ended_waiting_only_after_a_crash_or_broken_protocol(kind, wait):
    """_lose ends the student process, waiting 0.3 s for its status after a crash or a broken protocol (a dying
    process says why) and not at all after a timeout; the session forgets it and what it had run."""
    session = make_session()
    student = FakeStudent(FakeLink(), status=137)
    session.student, session.executed = student, {"a"}
    session._lose(Lost(kind, "why"))
    assert student.ended == [wait] and session.student is None and session.executed == set()


def test_the_reason_a_student_was_lost():
    """The reason is, first, that it wrote too much to its scratch folder (whatever else happened); else, for a crash,
    its exit status described; else the Lost's own reason. No student process: the Lost's reason."""
    session = make_session()
    session.student = FakeStudent(FakeLink(), status=128 + signal.SIGSEGV, full="wrote more than 64 MB")
    assert session._lose(Lost("timeout", "time limit")) == "wrote more than 64 MB"
    session.student = FakeStudent(FakeLink(), status=-signal.SIGSEGV)
    assert session._lose(Lost("crashed", "the student process ended")) == \
        "the process running your code crashed with a segmentation fault (SIGSEGV)"
    session.student = FakeStudent(FakeLink(), status=128 + signal.SIGSEGV)  # bubblewrap's status (a sandbox session)
    assert session._lose(Lost("crashed", "the student process ended")) == \
        "the process running your code crashed with a segmentation fault (SIGSEGV), or your code ended it with " \
        "exit status 139 (the sandbox cannot tell these apart)"
    session.student = FakeStudent(FakeLink(), status=3)
    assert session._lose(Lost("crashed", "x")) == \
        "your code ended the process (exit status 3), e.g. with os._exit() or a crash"
    session.student = FakeStudent(FakeLink(), status=-signal.SIGXFSZ)
    assert session._lose(Lost("crashed", "x")) == "the process running your code printed or wrote more than 8 MB"
    for kind in ("timeout", "protocol"):
        session.student = FakeStudent(FakeLink(), status=137)
        assert session._lose(Lost(kind, f"the {kind}")) == f"the {kind}"
    session.executed = {"a"}
    assert session._lose(Lost("crashed", "no student")) == "no student" and session.executed == set()


# -- starting the student process ------------------------------------------------------------------------------------

@pytest.mark.parametrize("submission_s, deadline", [(300.0, 40.0), (30.0, 40.0), (25.0, 35.0), (5.0, 15.0)])
def test_a_student_process_gets_30_s_to_start_within_the_submissions_time(monkeypatch, submission_s, deadline):
    """A student process is started with the session's configuration and clock, and a deadline of 30 s of work from
    now, or the submission's deadline if sooner; the setup cells run under that deadline."""
    session = make_session(limits={"submission_s": submission_s}, now=10.0,
                           course={"context": [("<setup>", "x = 1")]})
    made = with_students(monkeypatch, {"exec": lambda p: {}})
    session.executed = {"old"}
    session._start()
    student, = made
    assert session.student is student and student.config is session.config and student.deadline == deadline
    assert session.executed == set()
    assert {(deadline_, reason) for op, _, deadline_, reason in student.link.requests} == \
        {(deadline, "the course's setup cells did not finish in time")}
    assert student.link.deadline is None


def test_a_student_process_gets_the_kit_the_course_does_not_ask_the_student_for_then_the_setup_cells(monkeypatch):
    """The kit's names, in their order, less the course's answer names, then each setup cell with its label."""
    from pgcourse.classroom.sandboxed.loops import KIT_NAMES

    session = make_session(course={"answer_names": ["ValueNet", "unrelated"],
                                   "context": [("<setup 1>", "a = 1"), ("<setup 2>", "b = 2")]})
    made = with_students(monkeypatch, {"exec": lambda p: {}})
    session._start()
    assert [(op, payload) for op, payload, *_ in made[0].link.requests] == [
        ("kit", {"names": [name for name in KIT_NAMES if name != "ValueNet"]}),
        ("exec", {"source": "a = 1", "filename": "<setup 1>"}), ("exec", {"source": "b = 2", "filename": "<setup 2>"})]
    session = make_session()
    made = with_students(monkeypatch)
    session._start()
    assert made[0].link.requests[0][1] == {"names": list(KIT_NAMES)} and len(made[0].link.requests) == 1


def test_a_setup_cell_that_fails_in_the_student_process_is_a_grading_problem_unless_it_needs_the_course(monkeypatch):
    """A setup cell's error in the student process stops the start (RuntimeError naming the cell and the error),
    except the runner's refusal of the course package (the cell stops there, as the student's would); an answer that
    is not a dict or whose error is not text is no error."""
    answers = iter([{"error": "ImportError: pgcourse.rl is not available while grading: ..."}, None, {"error": None},
                    "text", {"error": "NameError: name 'q' is not defined"}])
    session = make_session(course={"context": [(f"<setup {i}>", "x") for i in range(5)]})
    with_students(monkeypatch, {"exec": lambda p: next(answers)})
    with pytest.raises(RuntimeError) as error:
        session._start()
    assert str(error.value) == ("the course's setup cell <setup 4> failed in the student process:\n"
                                "NameError: name 'q' is not defined")


# -- running answer cells ------------------------------------------------------------------------------------------

def test_an_answer_cells_label_numbers_its_cells_only_when_there_are_several():
    """One answer cell runs as "<answer cell g>"; several as "<answer cell g #1>", "#2"...: numbered among the answer
    cells only (a cell the student added runs as "<your added cell n>"), each followed by a ping."""
    session = make_session(answers={"one": ["x = 1"], "two": ["a = 1", {"added": 4, "source": "b = 2"}, "c = 3"],
                                    "solo": [{"added": 1, "source": "h = 0"}, "s = 1"]})
    link = FakeLink({"exec": lambda p: {}})
    session.student = FakeStudent(link)
    assert session._exec_answer("one", 50.0, "why") is None
    assert session._exec_answer("two", 50.0, "why") is None
    assert session._exec_answer("solo", 50.0, "why") is None
    assert [(op, payload) for op, payload, *_ in link.requests] == [
        ("exec", {"source": "x = 1", "filename": "<answer cell one>"}), ("ping", {}),
        ("exec", {"source": "a = 1", "filename": "<answer cell two #1>"}), ("ping", {}),
        ("exec", {"source": "b = 2", "filename": "<your added cell 4>"}), ("ping", {}),
        ("exec", {"source": "c = 3", "filename": "<answer cell two #2>"}), ("ping", {}),
        ("exec", {"source": "h = 0", "filename": "<your added cell 1>"}), ("ping", {}),
        ("exec", {"source": "s = 1", "filename": "<answer cell solo>"}), ("ping", {})]
    assert session.executed == {"one", "two", "solo"} and link.deadline is None
    assert {(deadline, reason) for _, _, deadline, reason in link.requests} == {(50.0, "why")}


def test_an_answer_cells_errors_are_returned_together_and_it_still_counts_as_run():
    """The text of each answer cell's error, joined by newlines (None when none raised); answers that are not a dict
    or whose error is not text are no error; the grade id counts as run either way."""
    replies = iter([{"error": "ValueError: one"}, {"error": None}, "junk", {"error": "KeyError: 'two'"}, {},
                    {"error": 5}, {"error": ["x"]}])
    session = make_session(answers={"g": ["1", "2", "3", "4", "5", "6", "7"]})
    session.student = FakeStudent(FakeLink({"exec": lambda p: next(replies)}))
    assert session._exec_answer("g", 9.0, "r") == "ValueError: one\nKeyError: 'two'"
    assert session.executed == {"g"}
    replies = iter([{"error": ""}])
    session.answers["h"] = ["x"]
    assert session._exec_answer("h", 9.0, "r") is None   # an empty error text is no error


@pytest.mark.parametrize("failing_op", ["exec", "ping"])
def test_an_answer_cell_that_loses_the_process_is_poisoned_and_not_run(failing_op):
    """An answer cell that loses the student process (in its run or just after, at the ping) is poisoned (never
    re-run for a later exercise) and not counted as run; the Lost goes on up."""
    session = make_session(answers={"g": ["while True: pass"]})
    session.student = FakeStudent(FakeLink({"exec": lambda p: {}, failing_op: lost("timeout", "time limit")}))
    with pytest.raises(Lost):
        session._exec_answer("g", 9.0, "r")
    assert session.poisoned == {"g"} and session.executed == set()


# -- cells the student added -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("error, shown", [
    ("Traceback (most recent call last):\n  File x\nValueError: bad value\n", "ValueError: bad value"),
    ("ZeroDivisionError: division by zero", "ZeroDivisionError: division by zero"),
    ("  \n  KeyError: 'é'  \n\n", "KeyError: 'é'"),
    ("", ""), ("\n \n", ""),
])
def test_an_added_cells_exception_is_a_note_naming_its_last_line(error, shown):
    """An exception in a cell the student added costs nothing by itself: a note naming the cell's number and the last
    line of its error (stripped), saying the grader ran it and went on."""
    session = make_session()
    session.student = FakeStudent(FakeLink({"exec": lambda p: {"error": error}}))
    session._run_added({"added": 3, "source": "1/0"})
    assert session.added_notes == [f"note: cell 3, which you added, raised {shown} (the grader ran it before your "
                                   "answer, as the notebook does, and went on)"]


def test_an_added_cell_without_an_error_leaves_no_note_and_its_defaults():
    """No error text (none, not text, not a dict): no note. A cell without a number is cell 0, without a source runs
    the empty text; the number and the source are converted (int, str)."""
    replies = iter([{}, {"error": 5}, None, {}])
    session = make_session()
    link = FakeLink({"exec": lambda p: next(replies)})
    session.student = FakeStudent(link)
    for entry in ({"added": 1, "source": "a"}, {"added": 2, "source": "b"}, {"added": "7", "source": 42}, {}):
        session._run_added(entry)
    assert session.added_notes == []
    execs = [payload for op, payload, *_ in link.requests if op == "exec"]
    assert execs[2:] == [{"source": "42", "filename": "<your added cell 7>"},
                         {"source": "", "filename": "<your added cell 0>"}]


@pytest.mark.parametrize("failing_op", ["exec", "ping"])
def test_an_added_cell_that_loses_the_process_is_skipped_from_then_on(failing_op):
    """An added cell that loses the student process is recorded as skipped with the reason, the Lost goes on up, and
    it is never sent again."""
    session = make_session()
    link = FakeLink({"exec": lambda p: {}, failing_op: lost("crashed", "the student process ended")})
    session.student = FakeStudent(link)
    with pytest.raises(Lost):
        session._run_added({"added": 5, "source": "import os; os._exit(1)"})
    assert session.skipped_added == {5: "the student process ended"}
    sent = len(link.requests)
    session._run_added({"added": 5, "source": "anything"})
    session._run_added({"added": "5", "source": "anything"})
    assert len(link.requests) == sent


# -- a live student that has run the earlier exercises ---------------------------------------------------------------

def three_exercises():
    return [{"id": "e0", "answer_ids": ["a0", "a1"]}, {"id": "e1", "answer_ids": ["b0"]},
            {"id": "e2", "answer_ids": ["c0"]}]


@pytest.mark.parametrize("position, rerun", [(0, []), (1, ["a0", "a1"]), (2, ["a0", "a1", "b0"])])
def test_a_student_process_first_reruns_every_earlier_exercises_answer_cells(monkeypatch, position, rerun):
    """Before an exercise, a fresh student process runs the answer cells of every exercise before it (not its own), in
    notebook order, under a deadline of --timeout of work from now (or the submission's, if sooner)."""
    answers = {g: [f"{g} = 1"] for g in ("a0", "a1", "b0", "c0")}
    session = make_session(course={"exercises": three_exercises()}, answers=answers, limits={"exercise_s": 7},
                           now=100.0)
    made = with_students(monkeypatch, {"exec": lambda p: {}})
    session._ensure_student(position)
    execs = [(payload["source"], deadline, reason) for op, payload, deadline, reason in made[0].link.requests
             if op == "exec"]
    assert execs == [(f"{g} = 1", 107.0, "re-running your earlier answer cells took too long") for g in rerun]
    assert session.executed == set(rerun)


def test_cells_already_run_poisoned_or_missing_are_not_rerun(monkeypatch):
    """A live process does not run again what it ran; a poisoned cell and a cell missing from the notebook are never
    run; with no process a new one is started first."""
    answers = {g: [f"{g} = 1"] for g in ("a0", "a1", "b0")}
    session = make_session(course={"exercises": three_exercises()}, answers={k: v for k, v in answers.items()
                                                                             if k != "a1"})
    session.poisoned = {"b0"}
    made = with_students(monkeypatch, {"exec": lambda p: {}})
    session._ensure_student(2)
    assert [p["source"] for op, p, *_ in made[0].link.requests if op == "exec"] == ["a0 = 1"]
    session._ensure_student(2)
    assert len(made) == 1 and [op for op in made[0].link.ops() if op == "exec"] == ["exec"]


def test_a_rerun_that_loses_the_process_starts_a_fresh_one_without_the_cell(monkeypatch):
    """When re-running an earlier answer cell loses the process, that cell is poisoned, the process is ended, and a
    fresh process re-runs the others; once the submission's time is used up, the Lost goes on up."""
    answers = {"a0": ["bad"], "a1": ["good"], "b0": ["fine"]}
    session = make_session(course={"exercises": three_exercises()}, answers=answers)
    made = with_students(monkeypatch, {"exec": lambda p: lost("crashed", "ended")(p) if p["source"] == "bad" else {}})
    session._ensure_student(2)
    assert len(made) == 2 and made[0].ended == [0.3] and session.poisoned == {"a0"}
    assert [p["source"] for op, p, *_ in made[1].link.requests if op == "exec"] == ["good", "fine"]
    session = make_session(course={"exercises": three_exercises()}, answers=answers)
    made = with_students(monkeypatch, {"exec": lost("timeout", "too long")})
    session.clock.step = 1000.0   # the submission's time is used up by the time the process is lost
    with pytest.raises(Lost):
        session._ensure_student(1)
    assert len(made) == 1 and made[0].ended == [0.0]


def test_a_rerun_lost_exactly_at_the_submissions_deadline_is_not_retried(monkeypatch):
    """A process lost when the work clock reads exactly the submission's deadline is not replaced: its time is used
    up (the Lost goes on up), even though a fresh process would now run the cell."""
    answers = {"a0": ["flaky"], "a1": ["good"]}
    session = make_session(course={"exercises": three_exercises()}, answers=answers)
    failures = iter([True])
    made = with_students(monkeypatch, {"exec": lambda p: lost("crashed", "ended")(p) if next(failures, False) else {}})
    session.clock.now = session.submission_deadline
    with pytest.raises(Lost):
        session._ensure_student(1)
    assert len(made) == 1


# -- an exercise's budget --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("budgets, seconds", [(None, 30.0), ({}, 30.0), ({"other": 5.0}, 30.0), ({"e": 30}, 30.0),
                                              ({"e": 31.0}, 30.0), ({"e": None}, 30.0)])
def test_without_a_budget_below_timeout_an_exercise_gets_timeout(budgets, seconds):
    """No budget for the exercise (none at all, another exercise's, None), or one of --timeout or more: --timeout,
    "<s> s (--timeout)"."""
    session = make_session(limits={"exercise_s": 30, "budgets": budgets})
    assert session._budget("e") == (seconds, "30 s (--timeout)")


def test_a_budget_below_timeout_is_explained_with_the_solutions_time_factor_and_floor():
    """A budget under --timeout is the exercise's limit, explained with its value (3 significant digits), the
    solution's time (2 significant digits) when known, the factor and floor (defaults 10 and 5), and that only this
    exercise lost its points."""
    session = make_session(limits={"exercise_s": 30, "budgets": {"e": 12.3456}, "reference_s": {"e": 1.23456},
                                   "budget_factor": 10, "budget_floor_s": 5})
    assert session._budget("e") == (12.3456, "this exercise's budget of 12.3 s (the course's solution took 1.2 s; "
                                             "the budget is 10 times that, at least 5 s, at most --timeout). Only "
                                             "this exercise lost its points: the grader went on with the next one")
    session = make_session(limits={"exercise_s": 60.0, "budgets": {"e": 8}, "budget_factor": 4.5,
                                   "budget_floor_s": 2.5})
    limit, why = session._budget("e")
    assert (limit, isinstance(limit, float)) == (8.0, True)
    assert why.startswith("this exercise's budget of 8 s (the budget is 4.5 times that, at least 2.5 s, at most")
    assert make_session(limits={"budgets": {"e": 6}})._budget("e")[1].startswith(
        "this exercise's budget of 6 s (the budget is 10 times that, at least 5 s,")
    assert "took 0 s;" in make_session(limits={"budgets": {"e": 6}, "reference_s": {"e": 0}})._budget("e")[1]


# -- releasing the student's objects ---------------------------------------------------------------------------------

def test_after_an_exercise_the_student_is_asked_to_release_within_10_s():
    """After each exercise the student process is asked to release what the check held, with 10 s of work to
    answer ("the student process stopped answering"); the deadline is cleared after."""
    session = make_session(now=5.0)
    link = FakeLink()
    session.student = FakeStudent(link)
    session._release()
    assert link.requests == [("release", {}, 15.0, "the student process stopped answering")]
    assert link.deadline is None and session.student is not None


def test_a_lost_student_is_not_asked_to_release_and_a_failed_release_loses_it():
    """A student whose link is already lost is ended without a request; one whose release is lost is ended; none:
    nothing happens."""
    session = make_session()
    session._release()
    link = FakeLink()
    link.lost = Lost("crashed", "gone")
    student = FakeStudent(link)
    session.student = student
    session._release()
    assert link.requests == [] and session.student is None and student.ended == [0.3]
    student = FakeStudent(FakeLink({"release": lost("timeout", "stuck")}))
    session.student = student
    session._release()
    assert session.student is None and student.ended == [0.0]


# -- one exercise ----------------------------------------------------------------------------------------------------

def exercise(answer_ids=("a",), check="assert True", points=2.0, **more):
    return {"id": "e", "answer_ids": list(answer_ids), "check_source": check, "check_grade_id": "e_check",
            "points": points, **more}


@pytest.mark.parametrize("answer_ids, answers, missing", [
    (["a"], {}, "a"), (["a", "b"], {"c": ["x"]}, "a, b"), (["a", "b"], {"b": ["x"]}, None), ([], {}, None)])
def test_an_exercise_whose_answer_cells_are_all_missing_is_missing(monkeypatch, answer_ids, answers, missing):
    """An exercise none of whose answer cells are in the notebook is "missing", naming them all, and nothing runs;
    one with any of them (or with none to have) is graded."""
    session = make_session(course={"exercises": [exercise(answer_ids)]}, answers=answers)
    tries = []

    def grade_once(position, ex):
        tries.append(position)
        assert len(tries) == 1, "graded again although no added cell was skipped"
        return {"points": 2.0, "status": "passed", "feedback": "passed"}
    monkeypatch.setattr(session, "_grade_once", grade_once)
    result = session._grade(0, exercise(answer_ids))
    if missing is None:
        assert result["status"] == "passed" and tries == [0]
    else:
        assert result == {"points": 0, "status": "missing", "feedback": f"answer cell {missing} is missing from the "
                          "notebook (deleted, or its metadata was changed): there is nothing to grade"}


def test_an_exercise_is_graded_again_without_an_added_cell_that_lost_the_process(monkeypatch):
    """When an added cell lost the process during an exercise, the exercise is graded again (the cell is skipped from
    then on); a result other than passed carries the notes of the exercise's added cells and of those skipped during
    it (sorted by number), not of those skipped before."""
    session = make_session(answers={"a": ["x = 1"]})
    session.skipped_added = {1: "skipped before"}
    tries = []

    def grade_once(position, ex):
        tries.append(position)
        if len(tries) == 1:
            session.skipped_added[9] = "the student process ended"
            session.skipped_added[4] = "time limit"
            return {"points": 0, "status": "crashed", "feedback": "crash"}
        session.added_notes = ["note: cell 2, which you added, raised X"]
        return {"points": 0.5, "status": "failed", "feedback": "wrong"}
    monkeypatch.setattr(session, "_grade_once", grade_once)
    result = session._grade(3, exercise())
    assert tries == [3, 3]
    assert result == {"points": 0.5, "status": "failed", "feedback": "wrong\n\nnote: cell 2, which you added, raised X"
                      "\n"
                      "note: cell 4, which you added, was skipped: time limit\nnote: cell 9, which you added, was "
                      "skipped: the student process ended"}


def test_a_passed_exercise_carries_no_notes_and_grading_stops_at_the_submissions_deadline(monkeypatch):
    """A passed exercise's feedback has no notes; once the submission's time is used up the exercise is not graded
    again even if an added cell was skipped."""
    session = make_session(answers={"a": ["x = 1"]})
    tries = []

    def grade_once(position, ex):
        tries.append(1)
        assert len(tries) == 1, "graded again after the submission's time was used up"
        session.skipped_added[len(tries)] = "lost"
        session.clock.now = session.submission_deadline
        return {"points": 2.0, "status": "passed", "feedback": "passed"}
    monkeypatch.setattr(session, "_grade_once", grade_once)
    assert session._grade(0, exercise()) == {"points": 2.0, "status": "passed", "feedback": "passed"}
    assert tries == [1]


def grading_session(monkeypatch, script, answers=None, limits=None, base=None, **kw):
    session = make_session(course={"exercises": [exercise(**kw)]}, answers=answers or {"a": ["x = 1"]},
                           limits=limits, base=base)
    made = with_students(monkeypatch, script)
    return session, made


def test_an_answer_cell_that_raises_is_an_error_naming_each_cell(monkeypatch):
    """Answer cells that raise make the exercise an error with 0 points, each cell named with its error; the check
    does not run; the student is then asked to release."""
    errors = {"x = 1": {"error": "ValueError: v"}, "y = 2": {"error": "KeyError: k"}}
    session, made = grading_session(monkeypatch, {"exec": lambda p: errors.get(p["source"], {})},
                                    answers={"a": ["x = 1"], "b": ["y = 2"], "c": ["z = 3"]},
                                    answer_ids=("a", "b", "c"))
    result = session._grade_once(0, exercise(("a", "b", "c")))
    assert result == {"points": 0, "status": "error", "feedback": "your answer cell a raised an exception when it "
                      "ran:\nValueError: v\nyour answer cell b raised an exception when it ran:\nKeyError: k"}
    assert "lookup" not in made[0].link.ops() and made[0].link.ops()[-1] == "release"


@pytest.mark.parametrize("limit, submission_s, reason", [
    (5.0, 300.0, "time limit: your code ran longer than this exercise's budget of 5 s"),
    (30.0, 300.0, "time limit: your code ran longer than 30 s (--timeout)"),
    (30.0, 30.0, "time limit: the submission used up its 30 s"),     # the same deadline: the submission's
    (30.0, 12.5, "time limit: the submission used up its 12.5 s"),
    (30.0, 30.001, "time limit: your code ran longer than 30 s (--timeout)"),
])
def test_an_exercises_deadline_and_its_reason(monkeypatch, limit, submission_s, reason):
    """An exercise's cells and check run under min(start + its limit, the submission's deadline); the reason names the
    exercise's limit when that is the sooner, else the submission's time."""
    budgets = {"e": limit} if limit < 30 else {}
    session, made = grading_session(monkeypatch, {"exec": lambda p: {}},
                                    limits={"submission_s": submission_s, "budgets": budgets})
    session._grade_once(0, exercise())
    deadline, why = next((d, r) for op, p, d, r in made[0].link.requests if op == "exec" and p["source"] == "x = 1")
    assert deadline == min(limit, submission_s) and why.startswith(reason)


@pytest.mark.parametrize("kind, status, why", [("timeout", "timeout", "the reason"),
                                               ("crashed", "crashed", "the student process ended"),   # its status
                                               ("protocol", "crashed", "the reason")])
def test_an_exercise_that_loses_the_process_is_a_timeout_or_a_crash(monkeypatch, kind, status, why):
    """Losing the student process in an exercise gives 0 points, "timeout" for a timeout and "crashed" for anything
    else, explained by _lose (a crash by the process's exit status: here none is known)."""
    session, made = grading_session(monkeypatch, {"exec": lost(kind, "the reason")})
    assert session._grade_once(0, exercise()) == {"points": 0, "status": status, "feedback": why}
    assert session.student is None


def test_a_failure_of_the_grading_itself_says_so_and_restarts_the_student(monkeypatch):
    """Any other exception while grading is a grading problem (not the student's, tell the teacher) with its type and
    message; the student process is ended as after a broken protocol."""
    def broken(payload):
        raise KeyError("boom")
    session, made = grading_session(monkeypatch, {"exec": broken})
    assert session._grade_once(0, exercise()) == {"points": 0, "status": "error", "feedback": "grading problem (not "
                                                  "caused by your answer, tell your teacher): KeyError: 'boom'"}
    assert made[0].ended == [0.3] and session.student is None


def test_an_exercises_seconds_are_its_work_from_its_first_cell(monkeypatch):
    """An exercise's seconds are the work from just before its own answer cells to the end of its check (re-running
    earlier cells not counted); an exercise that never began records none."""
    session, made = grading_session(monkeypatch, {"exec": lambda p: {}})
    session.clock.step = 1.0
    session._grade_once(0, exercise())
    assert session.seconds["e"] == pytest.approx(2.0)   # read when it began, by the check's _Deadline, at the end

    session, made = grading_session(monkeypatch, {"exec": lambda p: {}})   # a clock at 0 that does not move
    session._grade_once(0, exercise())
    assert session.seconds == {"e": 0.0}

    session, made = grading_session(monkeypatch, {"exec": lambda p: {}})
    monkeypatch.setattr(session, "_ensure_student", lambda position: (_ for _ in ()).throw(Lost("timeout", "t")))
    session._grade_once(0, exercise())
    assert "e" not in session.seconds


# -- the check -------------------------------------------------------------------------------------------------------

def checking(check, found=None, base=None, partial=None, points=2.0, functions=None):
    """A session with a live fake student whose lookup answers ``found``; the check ``check``."""
    session = make_session(base={"StudentError": StudentError, **(base or {})})
    link = FakeLink({"lookup": lambda p: found if found is not None else {}})
    link.functions = functions or {}
    session.student = FakeStudent(link)
    ex = {"id": "e", "check_source": check, "check_grade_id": "e_check", "points": points}
    if partial is not None:
        ex["partial"] = partial
    return session, link, ex


def test_a_check_asks_the_student_only_for_untrusted_free_names():
    """The check's lookup asks the student process for the names the check reads and neither binds nor finds among
    the trusted ones (the course's), under the exercise's deadline and reason; no such name: no lookup at all."""
    session, link, ex = checking("assert f(n) == helper", found={}, base={"helper": 1})
    session._check(ex, 40.0, "why")
    assert link.requests[0] == ("lookup", {"names": ["f", "n"]}, 40.0, "why")
    session, link, ex = checking("assert helper == 1", base={"helper": 1})
    assert session._check(ex, 40.0, "why")["status"] == "passed" and link.requests == []


def test_what_the_student_gives_for_a_name_becomes_a_function_data_or_unavailable():
    """A found name is a StudentFunction when the student says it is a function of that name, its data when it
    carries data (None included), else an Unavailable naming its type ("object" when unsaid); names not asked for,
    non-text names and entries that are not dicts are ignored."""
    found = {"f": {"function": "f"}, "g": {"function": "other"}, "d": {"data": [1, 2]}, "n": {"data": None},
             "u": {"unavailable": "module"}, "v": {}, "extra": {"data": 1}, "bad": "not a dict"}
    check = "values = (f, g, d, n, u, v, bad)"
    session, link, ex = checking(check, found=found)
    session._check(ex, 40.0, "why")
    ns = session.ns
    assert isinstance(ns["f"], StudentFunction) and ns["f"].__name__ == "f"
    assert isinstance(ns["g"], Unavailable) and isinstance(ns["u"], Unavailable) and isinstance(ns["v"], Unavailable)
    with pytest.raises(TypeError, match="u is a module object in your notebook"):
        ns["u"]()
    with pytest.raises(TypeError, match="v is a object object in your notebook"):
        ns["v"]()
    assert (ns["d"], ns["n"]) == ([1, 2], None)
    assert "extra" not in ns and "bad" not in ns
    assert set(session.inserted) == {"f", "g", "d", "n", "u", "v"}


def test_a_lookup_answered_with_something_else_breaks_the_protocol():
    """A lookup answered with anything but a dict loses the student process for a broken protocol."""
    session, link, ex = checking("f", found=["f"])
    with pytest.raises(Lost) as raised:
        session._check(ex, 40.0, "why")
    assert (raised.value.kind, raised.value.reason) == ("protocol", "the student process answered a lookup with "
                                                                    "something else")


def test_the_students_names_of_an_earlier_exercise_do_not_stay():
    """Before a check's names are inserted, every name inserted for an earlier check and every name asked for now is
    removed, so a name the student no longer gives is not the earlier value; names the course or a check defined stay
    (and are not asked for)."""
    session, link, ex = checking("answer = f\nkept = 1", found={"f": {"data": 1}})
    session._check(ex, 40.0, "why")
    assert session.ns["answer"] == 1 and "answer" in session.trusted_names and "f" not in session.trusted_names
    link.script["lookup"] = lambda p: {}
    ex["check_source"] = "assert kept == 1\nassert 'f' not in globals(), 'stale'"
    assert session._check(ex, 40.0, "why")["status"] == "passed"
    assert link.ops() == ["lookup"]   # nothing to ask for: the trusted ``kept``, a builtin
    ex["check_source"] = "value = f"
    result = session._check(ex, 40.0, "why")
    assert result["status"] == "error" and "name 'f' is not defined" in result["feedback"]


def test_a_name_the_check_rebinds_becomes_trusted():
    """A name the student gave that the check cell itself then rebinds is the check's: trusted from then on, no
    longer the student's; one left as inserted stays the student's."""
    session, link, ex = checking("before = f\nglobals()['f'] = 'mine'\nvalue = g",
                                 found={"f": {"data": 1}, "g": {"data": 2}})
    session._check(ex, 40.0, "why")
    assert link.requests[0][1] == {"names": ["f", "g"]} and session.ns["before"] == 1
    assert "f" in session.trusted_names and "f" not in session.inserted and session.ns["f"] == "mine"
    assert "g" not in session.trusted_names and session.inserted == {"g": 2}


def test_a_passed_check_earns_the_exercises_points_with_its_output_as_feedback():
    """A check that raises nothing passes with the exercise's points; its feedback is what it printed (stdout and
    stderr, in order) or "passed" when silent."""
    session, link, ex = checking("import sys\nprint('good')\nprint('also', file=sys.stderr)", points=3.5)
    assert session._check(ex, 40.0, "why") == {"points": 3.5, "status": "passed", "feedback": "good\nalso"}
    session, link, ex = checking("x = 1", points=1)
    assert session._check(ex, 40.0, "why") == {"points": 1, "status": "passed", "feedback": "passed"}


@pytest.mark.parametrize("check, status, feedback", [
    ("assert 1 == 2, 'the values differ'", "failed", "the values differ"),
    ("assert False", "failed", "the check failed (AssertionError)"),
    ("raise AssertionError('')", "failed", "the check failed (AssertionError)"),
    ("raise NotImplementedError('stub')", "failed",
     "not implemented yet: replace `raise NotImplementedError()` with your code"),
    ("raise StudentError('Traceback...\\nValueError: mine')", "error",
     "your code raised an exception:\nTraceback...\nValueError: mine"),
    ("undefined_name_here", "error", "name 'undefined_name_here' is not defined: your answer cell must define it "
                                     "(was it renamed, or its cell not run?)"),
    ("raise ValueError('bad shape')", "error", "the check failed with ValueError: bad shape"),
    ("raise KeyError('k')", "error", "the check failed with KeyError: 'k'"),
    ("class LearnerCodeError(Exception):\n    pass\nraise LearnerCodeError('Traceback (most recent call last):\\n"
     "  File x\\n" + ERROR_LINE + "your message')", "error", "your message"),
    ("class OtherError(Exception):\n    pass\nraise OtherError('Traceback (most recent call last):\\n  File x\\n"
     + ERROR_LINE + "cleaned too')", "error", "the check failed with OtherError: cleaned too"),
    ("raise SystemExit(3)", "error", "the check stopped with SystemExit: 3"),
    ("raise KeyboardInterrupt", "error", "the check stopped with KeyboardInterrupt:"),
    ("import sys\nraise ValueError(sys._getframe().f_code.co_filename)", "error",
     "the check failed with ValueError: <check cell e_check>"),
])
def test_a_checks_exception_is_its_verdict(check, status, feedback):
    """A failed assertion fails (with its message, or a default when it has none), as does a stub; the student's
    exception is an error shown with their traceback, a missing name an error saying the answer cell must define it,
    a LearnerCodeError its own (cleaned) text, any other exception or a SystemExit an error naming it; 0 points. The
    check runs compiled as "<check cell ID>"."""
    session, link, ex = checking(check)
    assert session._check(ex, 40.0, "why") == {"points": 0.0, "status": status, "feedback": feedback}


def test_losing_the_student_in_a_check_goes_on_up_even_if_the_check_swallowed_it():
    """A Lost raised in the check goes on up; so does one the check caught, once it ends (the link says lost)."""
    session, link, ex = checking("f(1)", found={"f": {"function": "f"}},
                                 functions={"f": lost("crashed", "the student process ended")})
    with pytest.raises(Lost):
        session._check(ex, 40.0, "why")

    def lose(*args):
        link.lost = Lost("timeout", "time limit")
        raise link.lost
    session, link, ex = checking("try:\n    f(1)\nexcept BaseException:\n    pass", found={"f": {"function": "f"}})
    link.functions = {"f": lose}
    with pytest.raises(Lost) as raised:
        session._check(ex, 40.0, "why")
    assert raised.value is link.lost


def test_a_check_runs_seeded_with_warnings_ignored_and_a_fresh_student_error():
    """Each check starts with every generator seeded with 0 (torch, numpy, random), with warnings ignored (none
    escapes, none is printed), and with the link's last student error forgotten."""
    check = ("import torch, numpy, random, warnings\nt = torch.rand(2).tolist()\nn = numpy.random.rand(2).tolist()\n"
             "r = random.random()\nwarnings.warn('loud')")
    session, link, ex = checking(check)
    link.last_student_error = StudentError("old")
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert session._check(ex, 40.0, "why") == {"points": 2.0, "status": "passed", "feedback": "passed"}
    assert caught == [] and link.last_student_error is None
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    assert session.ns["t"] == torch.rand(2).tolist() and session.ns["n"] == np.random.rand(2).tolist()
    assert session.ns["r"] == random.random()


def test_a_checks_own_deadline_is_the_exercises_plus_the_grace(monkeypatch):
    """The check's own work is stopped ALARM_GRACE (2 s) of work after the exercise's deadline, on the session's
    clock; the link's deadline is cleared after the check."""
    armed = []

    class Recorder:
        def __init__(self, link, at, clock):
            armed.append((link, at, clock))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None
    monkeypatch.setattr(worker, "_Deadline", Recorder)
    session, link, ex = checking("x = 1")
    session._check(ex, 40.0, "why")
    assert armed == [(link, 42.0, session.clock)] and link.deadline is None


@pytest.mark.parametrize("partial, check, asked", [
    (True, "assert False, 'no'", True), (False, "assert False, 'no'", False), (None, "assert False, 'no'", False),
    (True, "raise ValueError", False), (True, "x = 1", False), (1, "assert False, 'no'", True)])
def test_partial_credit_is_counted_only_for_a_failed_check_under_partial_credit(monkeypatch, partial, check, asked):
    """Only a failed check (not an error, not a pass) of an exercise graded with partial credit asks for partial
    credit; its points and feedback are then the result's."""
    session, link, ex = checking(check, partial=partial)
    calls = []

    def partial_credit(exercise_, feedback, deadline):
        calls.append((exercise_, feedback, deadline))
        return 0.75, feedback + " + partial"
    monkeypatch.setattr(session, "_partial_credit", partial_credit)
    result = session._check(ex, 40.0, "why")
    assert bool(calls) == asked
    if asked:
        assert calls == [(ex, "no", 40.0)]
        assert result == {"points": 0.75, "status": "failed", "feedback": "no + partial"}


# -- partial credit --------------------------------------------------------------------------------------------------

@pytest.fixture
def partial_module(monkeypatch):
    from pgcourse.classroom.grading import partial

    state = types.SimpleNamespace(concept=None, standard=None, cases=(3, 4, 2), points=None, calls=[])
    monkeypatch.setattr(partial, "concept_check", lambda source: state.concept)
    monkeypatch.setattr(partial, "standard_check", lambda source: state.standard)

    def concept_points(points, chapter, answers):
        state.calls.append(("concept", points, chapter, answers))
        return 1.25, "Partial credit: 1 of 2"

    def count_cases(name, function):
        state.calls.append(("count", name, function, torch.rand(1).item()))
        if isinstance(state.cases, BaseException):
            raise state.cases
        return state.cases

    def partial_points(points, right, total, informative):
        state.calls.append(("points", points, right, total, informative))
        return state.points if state.points is not None else 1.5

    monkeypatch.setattr(partial, "concept_points", concept_points)
    monkeypatch.setattr(partial, "count_cases", count_cases)
    monkeypatch.setattr(partial, "partial_points", partial_points)
    monkeypatch.setattr(partial, "describe", lambda r, t, i, earned, points: f"described {r} {t} {i} {earned} {points}")
    return state


def test_concept_questions_earn_points_per_answer_right(partial_module):
    """A concept check earns what concept_points gives for the student's answers (their data; a function or an
    unavailable object counts as no answers), its line added to the feedback after a blank line."""
    session, link, ex = checking("c", points=2.0)
    partial_module.concept = ("03", "answers")
    session.ns["answers"] = {"q1": "a"}
    assert session._partial_credit(ex, "wrong", 40.0) == (1.25, "wrong\n\nPartial credit: 1 of 2")
    assert partial_module.calls == [("concept", 2.0, "03", {"q1": "a"})]
    for value in (StudentFunction(link, "answers"), Unavailable("answers", "module")):
        session.ns["answers"] = value
        session._partial_credit(ex, "wrong", 40.0)
        assert partial_module.calls[-1] == ("concept", 2.0, "03", None)


def test_only_a_standard_check_of_a_student_function_counts_cases(partial_module):
    """A check that is not a standard one, or whose function is not the student's (missing, data), earns 0 with the
    feedback unchanged; nothing is counted."""
    session, link, ex = checking("c")
    assert session._partial_credit(ex, "wrong", 40.0) == (0.0, "wrong")
    partial_module.standard = ("returns", "f")
    assert session._partial_credit(ex, "wrong", 40.0) == (0.0, "wrong")
    session.ns["f"] = [1, 2]
    assert session._partial_credit(ex, "wrong", 40.0) == (0.0, "wrong")
    assert partial_module.calls == []


def test_a_standard_checks_cases_are_counted_seeded_and_described(partial_module):
    """The student's function's cases are counted (the generators seeded with 0 first), their points (at most the
    exercise's) given, described after a blank line."""
    session, link, ex = checking("c", points=2.0)
    partial_module.standard = ("returns", "f")
    function = session.ns["f"] = StudentFunction(link, "f")
    torch.manual_seed(5)
    assert session._partial_credit(ex, "wrong", 40.0) == (1.5, "wrong\n\ndescribed 3 4 2 1.5 2.0")
    torch.manual_seed(0)
    assert partial_module.calls == [("count", "returns", function, torch.rand(1).item()), ("points", 2.0, 3, 4, 2)]
    partial_module.points = 7.0
    assert session._partial_credit(ex, "wrong", 40.0)[0] == 2.0
    partial_module.points = 2.0
    assert session._partial_credit(ex, "wrong", 40.0)[0] == 2.0


def test_a_student_lost_while_counting_cases_earns_nothing_and_says_why(partial_module):
    """Losing the student while counting keeps the check's verdict and gives no partial credit, saying why."""
    session, link, ex = checking("c")
    partial_module.standard = ("returns", "f")
    session.ns["f"] = StudentFunction(link, "f")
    partial_module.cases = Lost("timeout", "time limit")
    assert session._partial_credit(ex, "wrong", 40.0) == (
        0.0, "wrong\n\nPartial credit: none (time limit while counting the cases)")


# ==================================================================================================================
# worker.py: the student process handle (no process: its pieces)
# ==================================================================================================================

def bare_student(**attributes):
    student = worker.StudentProcess.__new__(worker.StudentProcess)
    student.watch, student.clock, student.scratch, student.cgroup, student.status = None, None, None, None, None
    student.pid = 4321
    student.link = FakeLink()
    for name, value in attributes.items():
        setattr(student, name, value)
    return student


@pytest.fixture
def watches(monkeypatch):
    made = []

    class Watch:
        def __init__(self, used, limit, stop):
            self.used, self.limit, self.stop, self.exceeded, self.closed = used, limit, stop, None, False
            made.append(self)

        def close(self):
            self.closed = True
    monkeypatch.setattr(worker, "ScratchWatch", Watch)
    return made


@pytest.mark.parametrize("mode, euid, scratch, watched", [
    ("sandbox", 1000, None, "tmpfs"), ("sandbox", 0, None, None),       # as root the runner's tmpfs is sized
    ("unsafe-no-sandbox", 1000, "/tmp/s", "folder"), ("unsafe-no-sandbox", 0, "/tmp/s", "folder"),
    ("unsafe-no-sandbox", 1000, None, None), ("unsafe-no-sandbox", 1000, "", None),
])
def test_the_scratch_folder_is_watched_where_no_mount_bounds_it(monkeypatch, watches, mode, euid, scratch, watched):
    """An unprivileged sandbox's /tmp (its tmpfs's use, by pid) and an unsafe process's scratch folder (its files) are
    watched and the process killed past scratch_mb (default 64) MB; a sandbox made as root is not watched."""
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    monkeypatch.setattr(worker, "tmpfs_used", lambda pid: ("tmpfs", pid))
    monkeypatch.setattr(worker, "folder_used", lambda folder: ("folder", folder))
    student = bare_student(scratch=scratch)
    for limits, limit in (({}, 64 * MB), ({"scratch_mb": 1.5}, int(1.5 * MB)), ({"scratch_mb": 1}, MB)):
        watch = student._watch_scratch(mode, limits)
        if watched is None:
            assert watch is None
            continue
        assert watch.limit == limit and watch.stop == student._kill
        assert watch.used() == (("tmpfs", 4321) if watched == "tmpfs" else ("folder", scratch))


@pytest.mark.parametrize("error", [None, ProcessLookupError(), PermissionError()])
def test_killing_the_student_kills_its_whole_process_group(monkeypatch, error):
    """_kill sends SIGKILL to the student's process group; one already gone (or not ours) is no error."""
    killed = []

    def killpg(pid, sig):
        killed.append((pid, sig))
        if error is not None:
            raise error
    monkeypatch.setattr(os, "killpg", killpg)
    bare_student()._kill()
    assert killed == [(4321, signal.SIGKILL)]


@pytest.mark.parametrize("limits, mb", [({}, "64"), ({"scratch_mb": 2.5}, "2.5"), ({"scratch_mb": 100}, "100"),
                                        ({"scratch_mb": 64.0}, "64")])
def test_a_process_stopped_for_its_files_says_so_with_the_limit(limits, mb):
    """scratch_full: the FULL message with the scratch limit (``:g``) once the watch saw it exceeded; None when not
    exceeded or not watched."""
    from pgcourse.classroom.grading.scratch import FULL

    student = bare_student(watch=types.SimpleNamespace(exceeded=None))
    assert student.scratch_full(limits) is None
    student.watch.exceeded = 0
    assert student.scratch_full(limits) == FULL.format(mb=mb)
    student.watch.exceeded = 10**9
    assert student.scratch_full(limits) == FULL.format(mb=mb) and f"more than {mb} MB" in FULL.format(mb=mb)
    assert bare_student().scratch_full(limits) is None


def test_a_student_is_alive_until_it_has_a_status_or_its_link_is_lost():
    """alive(): no status and a link not lost."""
    assert bare_student().alive()
    assert not bare_student(status=0).alive()
    student = bare_student()
    student.link.lost = Lost("crashed", "x")
    assert not student.alive()


class FakeProc:
    def __init__(self, exits=None, after_kill=-9):
        self.exits, self.after_kill, self.waits = exits, after_kill, []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if timeout is not None:
            if self.exits is None:
                raise subprocess.TimeoutExpired("python", timeout)
            return self.exits
        return self.after_kill


@pytest.mark.parametrize("wait, exits, after_kill, status, waits", [
    (0.0, None, -9, -9, [None]),            # killed: -9, as Popen reports it
    (0.0, None, -11, -11, [None]), (0.0, None, 139, 139, [None]),
    (0.0, None, 0, 0, [None]), (0.0, None, 3, 3, [None]),
    (0.3, 1, -9, 1, [0.3]),                 # it ended by itself within the wait: its own status
    (0.3, -6, -9, -6, [0.3]),
    (0.3, None, -9, -9, [0.3, None]),       # it did not: killed
])
def test_ending_a_student_waits_kills_its_group_and_reports_a_signal_as_minus_n(monkeypatch, wait, exits, after_kill,
                                                                              status, waits):
    """end(wait): waits up to ``wait`` s for the process to end by itself (not at all for 0), kills its process group
    anyway, reaps it; a death by signal n is reported as -n (an exit status 128 + n as itself). The scratch watch is closed, the clock stops
    reading it, the socket is closed, the scratch folder and the cgroup removed."""
    killed = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: killed.append((pid, sig)))
    closed, removed = [], []
    clock = FakeClock()
    link = FakeLink()
    link.sock = types.SimpleNamespace(close=lambda: closed.append(True))
    watch = types.SimpleNamespace(close=lambda: closed.append("watch"))
    cgroup = types.SimpleNamespace(remove=lambda: removed.append(True))
    student = bare_student(proc=FakeProc(exits, after_kill), clock=clock, link=link, watch=watch, cgroup=cgroup)
    assert student.end(wait) == status and student.status == status
    assert student.proc.waits == waits and killed == [(4321, signal.SIGKILL)]
    assert clock.forgotten == [4321] and closed == ["watch", True] and removed == [True] and student.cgroup is None


def test_ending_a_student_that_already_ended_neither_waits_nor_kills(monkeypatch, tmp_path):
    """A process whose status is known is not waited for nor killed again; its status is returned as it is; its
    scratch folder is removed (and forgotten); a process group already gone is no error."""
    monkeypatch.setattr(os, "killpg", lambda pid, sig: (_ for _ in ()).throw(AssertionError("killed")))
    scratch = tmp_path / "scratch"
    (scratch / "sub").mkdir(parents=True)
    (scratch / "sub" / "file").write_text("x")
    student = bare_student(proc=FakeProc(), status=5, scratch=str(scratch))
    assert student.end(1.0) == 5 and student.proc.waits == [] and not scratch.exists() and student.scratch is None

    def gone(pid, sig):
        raise ProcessLookupError
    monkeypatch.setattr(os, "killpg", gone)
    student = bare_student(proc=FakeProc(after_kill=-9))
    assert student.end() == -9


@pytest.fixture
def spawn(monkeypatch, tmp_path):
    """StudentProcess.__init__ with a fake Popen that says hello over the socket it is given."""
    state = types.SimpleNamespace(popen=None, hello={"k": "hello"}, commands=[], cgroups=[], seccomp=b"")
    class Popen:
        def __init__(self, argv, **kwargs):
            state.popen = (argv, kwargs)
            fds = kwargs["pass_fds"]
            if len(fds) > 1:
                state.seccomp = os.read(fds[1], 100_000)
            sock = socket.socket(fileno=os.dup(fds[0]))
            data = json.dumps(state.hello).encode()
            sock.sendall(_HEADER.pack(len(data)) + data)
            sock.close()
            self.pid = 999_999

    def command(mode, runner_folder, sock_fd, limits, seccomp_fd, scratch):
        state.commands.append((mode, runner_folder, limits, seccomp_fd, scratch))
        return ["student", mode]

    class Cgroup:
        def __init__(self, hierarchy):
            self.hierarchy, self.limits = hierarchy, []
            state.cgroups.append(self)

        def entry_command(self, argv):
            return ["enter", *argv]

        def limit(self, added):
            self.limits.append(added)

        def remove(self):
            pass
    monkeypatch.setattr(worker.subprocess, "Popen", Popen)
    monkeypatch.setattr(worker, "student_command", command)
    monkeypatch.setattr(worker, "StudentCgroup", Cgroup)
    monkeypatch.setattr(worker, "ScratchWatch", lambda used, limit, stop: types.SimpleNamespace(
        used=used, limit=limit, close=lambda: None, exceeded=None))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(worker.tempfile, "mkdtemp", lambda prefix: str(scratch))
    state.scratch = str(scratch)
    return state


def test_a_sandboxed_student_process_is_started_with_the_seccomp_program_and_a_bare_environment(spawn):
    """In the sandbox the process is started from student_command with the socket and the seccomp program (read from
    a pipe whose fd is passed), no stdin/stdout/stderr, PATH only, in / and a session of its own; once it said hello
    the start deadline is cleared, its CPU is counted by the clock, and the unprivileged sandbox's /tmp is watched."""
    clock = WallClock()
    limits = {"memory_mb": 100, "scratch_mb": 3}
    student = worker.StudentProcess({"limits": limits, "isolation": "sandbox", "runner_folder": "/r"},
                                    time.monotonic() + 30, clock)
    argv, kwargs = spawn.popen
    assert argv == ["student", "sandbox"] and spawn.commands[0][:3] == ("sandbox", "/r", limits)
    assert spawn.commands[0][4] is None and isinstance(spawn.commands[0][3], int)
    assert spawn.seccomp == sandbox.seccomp_program()
    assert kwargs["env"] == {"PATH": "/usr/bin:/bin"} and kwargs["cwd"] == "/" and kwargs["start_new_session"]
    assert kwargs["stdin"] == kwargs["stdout"] == kwargs["stderr"] == subprocess.DEVNULL
    assert len(kwargs["pass_fds"]) == 2 and kwargs["pass_fds"][1] == spawn.commands[0][3]
    assert student.pid == 999_999 and clock.watched == [999_999] and student.alive()
    assert student.link.deadline is None and student.link.timeout_reason == "the student process did not start in time"
    assert student.watch.limit == 3 * MB and student.scratch is None and student.cgroup is None
    student.link.sock.close()


def test_an_unsafe_student_process_runs_in_a_scratch_folder_of_its_own_without_seccomp(spawn):
    """Without the sandbox the process gets a fresh scratch folder (its cwd, given to student_command) and no seccomp
    program."""
    student = worker.StudentProcess({"limits": {"memory_mb": 100}, "isolation": "unsafe-no-sandbox",
                                     "runner_folder": "/r"}, time.monotonic() + 30)
    argv, kwargs = spawn.popen
    assert kwargs["cwd"] == spawn.scratch and len(kwargs["pass_fds"]) == 1
    assert spawn.commands[0][3:] == (None, spawn.scratch) and student.scratch == spawn.scratch
    assert student.watch.limit == 64 * MB
    student.link.sock.close()


def test_a_student_process_with_a_memory_cgroup_enters_it_and_is_limited_after_hello(spawn):
    """With a memory hierarchy the process enters a cgroup of its own before it starts, limited after its hello to
    what it holds plus memory_mb MB."""
    student = worker.StudentProcess({"limits": {"memory_mb": 1.5}, "isolation": "sandbox", "runner_folder": "/r",
                                     "memory_cgroup": "H"}, time.monotonic() + 30)
    assert spawn.popen[0] == ["enter", "student", "sandbox"]
    cgroup, = spawn.cgroups
    assert cgroup.hierarchy == "H" and cgroup.limits == [int(1.5 * MB)] and student.cgroup is cgroup
    student.link.sock.close()


def test_a_student_process_without_a_seccomp_program_gets_none(spawn, monkeypatch):
    """On a processor with no seccomp program the sandboxed process is started without one (no pipe)."""
    monkeypatch.setattr(worker, "seccomp_program", lambda: None)
    student = worker.StudentProcess({"limits": {"memory_mb": 1}, "isolation": "sandbox", "runner_folder": "/r"},
                                    time.monotonic() + 30)
    assert spawn.commands[0][3] is None and len(spawn.popen[1]["pass_fds"]) == 1
    student.link.sock.close()


@pytest.mark.parametrize("hello", [{"k": "hi"}, {}, {"k": "Hello"}])
def test_a_student_process_that_does_not_say_hello_broke_the_protocol(spawn, hello):
    """A first message other than {"k": "hello"} loses the process for a broken protocol: it did not start."""
    spawn.hello = hello
    with pytest.raises(Lost) as raised:
        worker.StudentProcess({"limits": {"memory_mb": 1}, "isolation": "sandbox", "runner_folder": "/r"},
                              time.monotonic() + 30)
    assert (raised.value.kind, raised.value.reason) == ("protocol", "the student process did not start")


# ==================================================================================================================
# worker.py: the process entry point and its helpers
# ==================================================================================================================

def test_the_worker_limits_its_own_address_space_to_its_size_plus_the_allowance(monkeypatch):
    """_limit_own_memory(mb): RLIMIT_AS soft limit = the process's VmSize now (kB × 1024; not VmPeak) + mb MB, hard
    limit unlimited."""
    import resource

    calls = []
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: calls.append((which, value)))
    status = "Name:\tpython\nVmPeak:\t  999999 kB\nVmSize:\t    2048 kB\nVmRSS:\t 100 kB\n"
    monkeypatch.setattr(worker, "open", lambda path: io.StringIO(status), raising=False)
    worker._limit_own_memory(4096)
    assert calls == [(resource.RLIMIT_AS, (2048 * 1024 + 4096 * MB, resource.RLIM_INFINITY))]


@pytest.mark.parametrize("status, error", [("Name:\tpython\n", None), ("VmSize:\tlots kB\n", None),
                                           ("VmSize:\t10 kB\n", ValueError("too big")),
                                           ("VmSize:\t10 kB\n", OSError("no"))])
def test_a_worker_that_cannot_limit_itself_goes_on(monkeypatch, status, error):
    """No VmSize line, an unreadable one, or a refused limit: no limit and no error."""
    import resource

    def setrlimit(which, value):
        if error is not None:
            raise error
        raise AssertionError("no limit should be set")
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    monkeypatch.setattr(worker, "open", lambda path: io.StringIO(status), raising=False)
    worker._limit_own_memory(10)

    def unreadable(path):
        raise FileNotFoundError(path)
    monkeypatch.setattr(worker, "open", unreadable, raising=False)
    worker._limit_own_memory(10)


@pytest.mark.parametrize("key, hunt_key, student, hunt", [
    ("ann", "secret", "ann", "secret"), ("ann", None, "ann", None), ("ann", "", "ann", None), (7, "k", "7", "k"),
    ("\0selftest", "secret", None, None), ("selftest", None, "selftest", None), ("", "k", "", "k"),
])
def test_the_bug_hunt_grades_the_hunt_of_the_submissions_student(monkeypatch, key, hunt_key, student, hunt):
    """Before grading, PGCOURSE_STUDENT_ID is the submission's key (as text) and PGCOURSE_HUNT_KEY the teacher's key
    when one is given (an empty one is none); the self-test ("\\0selftest") has neither."""
    monkeypatch.setenv("PGCOURSE_STUDENT_ID", "previous")
    monkeypatch.setenv("PGCOURSE_HUNT_KEY", "previous")
    worker._bug_hunt_student(key, hunt_key)
    assert (os.environ.get("PGCOURSE_STUDENT_ID"), os.environ.get("PGCOURSE_HUNT_KEY")) == (student, hunt)


PRELOADED = ("gymnasium", "gymnasium.envs.classic_control.cartpole", "gymnasium.envs.classic_control.pendulum",
             "gymnasium.envs.classic_control.acrobot", "gymnasium.envs.classic_control.mountain_car",
             "gymnasium.wrappers", "gymnasium.vector", "torch.distributions", "torch.nn.functional",
             "torch.testing", "numpy.testing", "matplotlib", "matplotlib.pyplot",
             "pgcourse", "pgcourse.course.checks", "pgcourse.rl.envs", "pgcourse.rl.networks", "pgcourse.rl.config",
             "pgcourse.rl.algorithms", "pgcourse.rl.returns", "pgcourse.rl.losses", "pgcourse.rl.diagnostics",
             "pgcourse.rl.batching", "pgcourse.rl.run", "pgcourse.rl.evaluation", "pgcourse.rl.history",
             "pgcourse.course.debugging", "pgcourse.course.views.plotting", "pgcourse.course.views.render",
             "pgcourse.course.views.widgets", "torch.fx.experimental.symbolic_shapes")


def test_the_worker_preloads_what_checks_use_and_every_submodule_of_the_checks_but_main(monkeypatch):
    """_preload imports the listed modules (one failing does not stop the others), then walks pgcourse.course.checks
    and pgcourse.course.debugging and imports every submodule except a __main__ (failures ignored)."""
    import importlib
    import pkgutil

    imported, walked = [], []

    def import_module(name):
        imported.append(name)
        if name in ("matplotlib", "pgcourse.course.checks.broken"):
            raise ImportError(name)
        if name == "pgcourse.course.debugging":
            raise RuntimeError("cannot walk this one")
        return types.SimpleNamespace(__path__=[f"/fake/{name}"])

    def walk_packages(path, prefix):
        walked.append((path, prefix))
        return [pkgutil.ModuleInfo(None, f"{prefix}{name}", name == "stages")
                for name in ("broken", "__main__", "stages", "stages.__main__", "stages.loop")]
    monkeypatch.setattr(importlib, "import_module", import_module)
    monkeypatch.setattr(pkgutil, "walk_packages", walk_packages)
    worker._preload()
    assert imported == [*PRELOADED, "pgcourse.course.checks", "pgcourse.course.checks.broken",
                        "pgcourse.course.checks.stages", "pgcourse.course.checks.stages.loop",
                        "pgcourse.course.debugging"]
    assert walked == [(["/fake/pgcourse.course.checks"], "pgcourse.course.checks.")]


@pytest.fixture
def entry_point(monkeypatch, tmp_path):
    """worker_main over a real pipe, with the worker, its preload, its memory limit and torch's threads faked."""
    import multiprocessing

    state = types.SimpleNamespace(made=[], limited=[], threads=[], grades=[], fail_init=False, gc=[])

    class Worker:
        def __init__(self, isolation, runner_folder):
            if state.fail_init:
                raise RuntimeError("no sandbox for student code: test")
            self.isolation, self.isolation_detail, self.given_folder = isolation, f"detail of {isolation}", runner_folder
            self.runner_folder = tmp_path / f"runner{len(state.made)}"
            self.runner_folder.mkdir()
            state.made.append(self)

        def grade(self, course, answers, limits):
            state.grades.append((course, answers, limits, os.environ.get("PGCOURSE_STUDENT_ID"),
                                 os.environ.get("PGCOURSE_HUNT_KEY")))
            if course == "broken":
                raise ValueError("the course is broken")
            return {"exercises": {"e": 1}, "isolation": self.isolation, "seconds": {}}

    def interop(n):
        state.threads.append(("interop", n))
        raise RuntimeError("already set")
    monkeypatch.setattr(worker, "Worker", Worker)
    monkeypatch.setattr(worker, "_preload", lambda: state.threads.append("preload"))
    monkeypatch.setattr(worker, "_limit_own_memory", lambda mb: state.limited.append(mb))
    monkeypatch.setattr(worker.torch, "set_num_threads", lambda n: state.threads.append(("threads", n)))
    monkeypatch.setattr(worker.torch, "set_num_interop_threads", interop)
    monkeypatch.setattr(worker, "gc", types.SimpleNamespace(collect=lambda: state.gc.append("collect"),
                                                            freeze=lambda: state.gc.append("freeze")))
    monkeypatch.delenv("PGCOURSE_STUDENT_ID", raising=False)
    monkeypatch.delenv("PGCOURSE_HUNT_KEY", raising=False)

    def run(messages, end_with_eof=False):
        ours, theirs = multiprocessing.Pipe()
        for message in messages:
            ours.send(message)
        if end_with_eof:
            socket.socket(fileno=os.dup(ours.fileno())).shutdown(socket.SHUT_WR)
        fd = os.dup(theirs.fileno())
        theirs.close()
        worker.worker_main(fd)
        replies = []
        while ours.poll(0.5):
            try:
                replies.append(ours.recv())
            except (EOFError, ConnectionResetError):   # reset: the worker left a message unread
                break
        ours.close()
        return replies

    state.run = run
    return state


def test_the_worker_says_ready_then_grades_until_told_to_stop(entry_point):
    """worker_main: one torch thread; reads hello, preloads, limits its memory to WORKER_MEMORY_MB, starts the Worker
    with hello's isolation ("auto" by default) and runner folder (None: it makes one), freezes its objects and says ready with its isolation, detail and pid;
    then answers each grade with op "result" and the key, ignores other ops, and ends at "stop" (what follows is not
    read), removing its runner folder."""
    grade = {"op": "grade", "key": "ann", "course": "c", "answers": {"a": ["x"]}, "limits": {"l": 1}, "hunt_key": "K"}
    replies = entry_point.run([{}, grade, {"op": "unknown"}, {"no": "op"}, {**grade, "key": "bob", "hunt_key": None},
                               {"op": "stop"}, grade], end_with_eof=True)
    assert entry_point.threads[:3] == [("threads", 1), ("interop", 1), "preload"]
    assert entry_point.limited == [4096] and entry_point.gc == ["collect", "freeze"]
    made, = entry_point.made
    assert made.isolation == "auto" and made.given_folder is None and not made.runner_folder.exists()
    assert replies == [
        {"op": "ready", "isolation": "auto", "detail": "detail of auto", "pid": os.getpid()},
        {"exercises": {"e": 1}, "isolation": "auto", "seconds": {}, "op": "result", "key": "ann"},
        {"exercises": {"e": 1}, "isolation": "auto", "seconds": {}, "op": "result", "key": "bob"}]
    assert entry_point.grades == [("c", {"a": ["x"]}, {"l": 1}, "ann", "K"), ("c", {"a": ["x"]}, {"l": 1}, "bob", None)]


def test_a_failed_grading_is_reported_and_the_worker_stays_up(entry_point):
    """A grading that raises is answered with op "failure", the key and the traceback; the next grade is served; the
    end of the pipe ends the worker like "stop"."""
    replies = entry_point.run([{"isolation": "unsafe-no-sandbox", "runner_folder": "/the/pools/folder"},
                               {"op": "grade", "key": "k1", "course": "broken", "answers": {}, "limits": {}},
                               {"op": "grade", "key": "k2", "course": "c", "answers": {}, "limits": {}}],
                              end_with_eof=True)
    assert [reply["op"] for reply in replies] == ["ready", "failure", "result"]
    assert replies[0]["isolation"] == "unsafe-no-sandbox" and entry_point.made[0].given_folder == "/the/pools/folder"
    assert replies[1]["key"] == "k1" and "ValueError: the course is broken" in replies[1]["error"]
    assert replies[1]["error"].startswith("Traceback (most recent call last):") and replies[2]["key"] == "k2"
    assert not entry_point.made[0].runner_folder.exists()


def test_a_worker_that_cannot_start_reports_a_crash(entry_point):
    """An exception before the worker is ready (no sandbox, say) is sent as op "crash" with its traceback; a pipe
    closed before hello ends the worker quietly."""
    entry_point.fail_init = True
    replies = entry_point.run([{}])
    assert len(replies) == 1 and replies[0]["op"] == "crash"
    assert "RuntimeError: no sandbox for student code: test" in replies[0]["error"]
    entry_point.fail_init = False
    assert entry_point.run([], end_with_eof=True) == [] and entry_point.made == []
